use crate::{OpenOptions, open};

fn get(spec: &str, key: &str) -> Option<String> {
    open(spec, &OpenOptions::default())
        .unwrap()
        .lookup(key)
        .unwrap()
}

const RE: &str = "regexp:{ {/^(a)(b)?c$/ x=$1 y=$2 z=${1}w $$ $(2)}, {/^neg/ $3}, {!/^zz/ n$1}, \
    {if !/^owner-/}, {/^(.*)-outgoing@(.*)$/ 550 Use ${1}@${2} instead}, {endif}, \
    {/^Case$/i sensitive}, {/novalue/}, {/tail/ tail $}, {!/^[a-z]/ not-lower} }";

#[test]
fn regexp_substitution_and_flags() {
    assert_eq!(get(RE, "ac").as_deref(), Some("x=a y= z=aw $ "));
    assert_eq!(get(RE, "ABC").as_deref(), Some("x=A y=B z=Aw $ B"));
    assert_eq!(
        get(RE, "list-outgoing@example.com").as_deref(),
        Some("550 Use list@example.com instead")
    );
    assert_eq!(get(RE, "owner-list-outgoing@example.com"), None);
    assert_eq!(get(RE, "Case").as_deref(), Some("sensitive"));
    assert_eq!(get(RE, "CASE"), None);
    assert_eq!(get(RE, "novalue").as_deref(), Some(""));
    assert_eq!(get(RE, "tail"), None);
    assert_eq!(get(RE, "1abc").as_deref(), Some("not-lower"));
}

#[test]
fn regexp_warnings_match_postfix() {
    let map = open(RE, &OpenOptions::default()).unwrap();
    let w: Vec<String> = map.warnings().iter().map(|e| e.to_string()).collect();
    let spec = format!("regexp map {}", RE.strip_prefix("regexp:").unwrap());
    assert_eq!(
        w,
        vec![
            format!("{spec}, line 2: out of range replacement index \"3\": skipping this rule"),
            format!(
                "{spec}, line 3: $number found in negative match replacement text: skipping this rule"
            ),
            format!("{spec}, line 8: no replacement text: using empty string"),
            "empty macro name: \"tail $\"".to_string(),
            format!("{spec}, line 9: bad replacement syntax: skipping this rule"),
        ]
    );
}

#[test]
fn strict_mode_rejects_first_bad_rule() {
    let opts = OpenOptions {
        strict: true,
        ..OpenOptions::default()
    };
    let err = open("regexp:{ {/a/ ok}, {/(/ bad} }", &opts).unwrap_err();
    assert!(
        matches!(err, crate::TableError::Syntax { line: 2, .. }),
        "{err}"
    );
}

#[test]
fn other_delimiters_and_escapes() {
    let spec = "regexp:{ {#^a/b$# slash}, {/^c\\/d$/ escaped}, {!!/^e/ double-negation} }";
    assert_eq!(get(spec, "a/b").as_deref(), Some("slash"));
    assert_eq!(get(spec, "c/d").as_deref(), Some("escaped"));
    assert_eq!(get(spec, "e1").as_deref(), Some("double-negation"));
}

#[test]
fn pcre_semantics() {
    let spec = "pcre:{ {/^(?!owner-)(.*)-outgoing@(.*)/ 550 Use ${1}@${2} instead}, \
        {/^(friend@(?!my\\.domain$).*)$/ 550 Stick $1}, {/^a.b$/ dotall}, {/^x(\\d+)$/A digits $1}, \
        {/^U(a+)/U lazy $1}, {/^S/s dot-off} }";
    assert_eq!(
        get(spec, "list-outgoing@x.org").as_deref(),
        Some("550 Use list@x.org instead")
    );
    assert_eq!(get(spec, "owner-list-outgoing@x.org"), None);
    assert_eq!(
        get(spec, "friend@other.org").as_deref(),
        Some("550 Stick friend@other.org")
    );
    assert_eq!(get(spec, "friend@my.domain"), None);
    assert_eq!(get(spec, "a\nb").as_deref(), Some("dotall"));
    assert_eq!(get(spec, "X42").as_deref(), Some("digits 42"));
    assert_eq!(get(spec, "Uaaa").as_deref(), Some("lazy a"));
}

#[test]
fn pcre_bad_pattern_is_skipped() {
    let map = open("pcre:{ {/(/ x}, {/ok/ y} }", &OpenOptions::default()).unwrap();
    assert_eq!(map.warnings().len(), 1);
    assert_eq!(map.lookup("ok").unwrap().as_deref(), Some("y"));
    assert!(map.flags().pattern);
}

#[test]
fn inline_rules_must_be_braced() {
    assert!(open("regexp:{ /a/ x }", &OpenOptions::default()).is_err());
}

#[test]
fn regexp_unless_form() {
    // Postfix's `/pat1/!/pat2/`: pat1 matches and pat2 does not; `$n` are pat1's groups.
    let spec = "regexp:{ {/^a(.*)/!/^ab/ A $1}, {/^c/!/d/!/e/ rest}, {/^q/! xz} }";
    assert_eq!(get(spec, "axy").as_deref(), Some("A xy"));
    assert_eq!(get(spec, "aby"), None);
    assert_eq!(get(spec, "c").as_deref(), Some("!/e/ rest"));
    let map = open(spec, &OpenOptions::default()).unwrap();
    let w: Vec<String> = map.warnings().iter().map(|e| e.to_string()).collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].ends_with("line 3: no closing regexp delimiter \"x\": skipping this rule"));
    // pcre has no such form: the `!` is an unknown flag.
    let map = open("pcre:{ {/a/!/b/ x} }", &OpenOptions::default()).unwrap();
    assert!(
        map.warnings()[0]
            .to_string()
            .ends_with("unknown regexp option \"!\": skipping this rule")
    );
}

#[test]
fn rhs_is_file_reads_files_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let f1 = dir.path().join("f1");
    std::fs::write(&f1, "hello\n").unwrap();
    let opts = OpenOptions {
        rhs_is_file: true,
        ..OpenOptions::default()
    };
    let missing = dir.path().join("missing");
    let spec = format!(
        "regexp:{{ {{/^a/ {}, {}}}, {{/^b/ {}}} }}",
        f1.display(),
        f1.display(),
        missing.display()
    );
    let map = open(&spec, &opts).unwrap();
    assert_eq!(
        map.lookup("a").unwrap().as_deref(),
        Some("aGVsbG8KCmhlbGxvCg==")
    );
    assert_eq!(map.lookup("b").unwrap(), None);
    let w = map.warnings()[0].to_string();
    assert!(
        w.ends_with(": No such file or directory: skipping this rule"),
        "{w}"
    );
}

#[test]
fn glibc_error_texts() {
    let map = open("regexp:{ {/(/ x}, {/a{2,1}/ y} }", &OpenOptions::default()).unwrap();
    let w: Vec<String> = map.warnings().iter().map(|e| e.to_string()).collect();
    assert!(w[0].ends_with("line 1: Unmatched ( or \\("), "{w:?}");
    assert_eq!(w.len(), 2, "{w:?}");
    let map = open("pcre:{ {/(/ x} }", &OpenOptions::default()).unwrap();
    let w = map.warnings()[0].to_string();
    assert!(
        w.ends_with("line 1: error in regex at offset 1: missing closing parenthesis"),
        "{w}"
    );
}
