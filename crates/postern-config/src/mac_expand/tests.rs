//! Unit tests of [`super::mac_expand`]: every form, both modes, limits and malformed input.

use super::*;
use std::collections::HashMap;

fn table<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl FnMut(&str, Mode) -> Option<String> + 'a {
    let m: HashMap<&str, &str> = pairs.iter().copied().collect();
    move |n: &str, _| m.get(n).map(|v| v.to_string())
}

/// main.cf mode.
fn ex(pairs: &[(&str, &str)], text: &str) -> String {
    mac_expand(text, &Options::main_cf(), &mut table(pairs)).text
}

/// main.cf mode, whole result.
fn exr(pairs: &[(&str, &str)], text: &str) -> Expansion {
    mac_expand(text, &Options::main_cf(), &mut table(pairs))
}

/// local mode.
fn lx(pairs: &[(&str, &str)], text: &str, filter: Option<&str>) -> Expansion {
    mac_expand(text, &Options::local(filter), &mut table(pairs))
}

#[test]
fn plain_forms() {
    let m = [("a", "A"), ("b", "$a-x")];
    assert_eq!(ex(&m, "$a ${a} $(a) $b"), "A A A A-x");
    assert_eq!(ex(&m, "$$a $unknown."), "$a .");
    assert_eq!(ex(&m, "cost $ 5 $"), "cost $ 5 $");
    assert_eq!(ex(&m, "$a.b$a_c$a"), "A.bA");
    assert_eq!(ex(&m, ""), "");
    assert_eq!(ex(&m, "ünï$a€"), "ünïA€");
    let r = exr(&m, "$a $nope");
    assert!(r.undefined && !r.error && !r.truncated);
    assert!(!exr(&m, "$a").undefined);
}

#[test]
fn malformed_is_literal_and_an_error() {
    let m = [("a", "A")];
    for t in [
        "${a",
        "$(a",
        "${}",
        "$()",
        "${?x}",
        "${a!x}",
        "${a?{x}y}",
        "${a?{x}:y}",
    ] {
        let r = exr(&m, t);
        assert!(r.error, "{t}: {r:?}");
    }
    // A truncated reference ends the expansion; what came before stays.
    assert_eq!(ex(&m, "x $a ${a"), "x A ");
    assert_eq!(ex(&m, "$a$(a"), "A");
    assert_eq!(lx(&m, "x$a${a?{b}", None).text, "xA");
    assert_eq!(ex(&m, "x${}y"), "x${}y");
    assert_eq!(ex(&m, "${a!x} $a"), "${a!x} A");
    assert_eq!(ex(&m, "${a?{x}y}"), "${a?{x}y}");
    // `${a:{x} z}`: not a lone braced value, so the whole text is the value.
    assert_eq!(ex(&[], "${a:{x} z}"), "{x} z");
}

#[test]
fn conditionals() {
    let m = [("set", "x"), ("empty", "")];
    assert_eq!(ex(&m, "${set?yes}|${empty?yes}|${nope?yes}"), "yes||");
    assert_eq!(ex(&m, "${set:no}|${empty:no}|${nope:no}"), "|no|no");
    assert_eq!(ex(&m, "${set?{ a b }}|${empty:{c}}"), "a b|c");
    assert_eq!(ex(&m, "${set?{1}:{2}} ${empty?{1}:{2}}"), "1 2");
    assert_eq!(ex(&m, "${set?{1} : {2}} ${nope?{1}  :  {2} }"), "1 2");
    assert_eq!(ex(&m, "${set?$set$set}"), "xx");
    assert_eq!(ex(&m, "${set?a:b}"), "a:b");
    assert_eq!(ex(&m, "$(set?yes)$(empty:no)"), "yesno");
    assert_eq!(ex(&m, "${set?{${empty:{in}}}}"), "in");
    assert_eq!(ex(&m, "${set?{${empty?{in}:{out}}}}"), "out");
    // Testing a name is not inserting it: no undefined mark.
    assert!(!exr(&m, "${nope?x}${nope:y}").undefined);
}

#[test]
fn conditional_on_a_value_with_references() {
    // The test looks at the raw value: `$e` is non-empty text even though it expands to "".
    let m = [("r", "$e"), ("e", "")];
    assert_eq!(ex(&m, "${r?set}"), "set");
    assert_eq!(ex(&m, "[$r]"), "[]");
}

#[test]
fn relational() {
    let m = [("compatibility_level", "3.6"), ("n", "5")];
    let t = "${{$compatibility_level} <level {2} ? {subnet} : {host}}";
    assert_eq!(ex(&m, t), "host");
    assert_eq!(ex(&[], t), "subnet");
    assert_eq!(ex(&m, "${{$n} == {5} ? {eq}}"), "eq");
    assert_eq!(ex(&m, "${{$n} != {5} ? {ne} : {eq}}"), "eq");
    assert_eq!(ex(&m, "${{$n} > {7} ? {gt} : {le}}"), "le");
    assert_eq!(
        ex(
            &m,
            "${{$n} >= {5} ? {ge}}${{$n} <= {4} ? {le}}${{$n} < {6} ? {lt}}"
        ),
        "gelt"
    );
    assert_eq!(
        ex(
            &m,
            "${{3.6.1} >level {3.6} ? {y}}${{3.10} >=level {3.9} ? {z}}"
        ),
        "yz"
    );
    assert_eq!(
        ex(&m, "${{a} == {a} ? {same}}${{a} == {b} ? {same} : {diff}}"),
        "samediff"
    );
    for bad in [
        "${{$n} ~ {7} ? {a}}",
        "${{$n} > {x} ? {a}}",
        "${{$n} == {5} {a}}",
        "${{$n} == {5} ? a}",
        "${{$n} == {5} ? {a} b}",
        "${{$n} == 5 ? {a}}",
        "${{$n}}",
    ] {
        let r = exr(&m, bad);
        assert_eq!(r.text, bad);
        assert!(r.error, "{bad}");
    }
    assert_eq!(compare_levels("3.6", "3.6.0"), Some(Ordering::Equal));
    assert_eq!(compare_levels("", "0"), Some(Ordering::Equal));
    assert_eq!(compare_levels("3.x", "3"), None);
}

#[test]
fn cycles_and_bombs_terminate() {
    let m = [("a", "x$a"), ("b", "$c"), ("c", "$b")];
    assert_eq!(ex(&m, "$a"), "x$a");
    assert_eq!(ex(&m, "$b"), "$b");
    assert!(exr(&m, "$b").error);
    let bomb = [
        ("a", "$b$b$b$b$b$b$b$b"),
        ("b", "$c$c$c$c$c$c$c$c"),
        ("c", "$d$d$d$d$d$d$d$d"),
        ("d", "$e$e$e$e$e$e$e$e"),
        ("e", "$f$f$f$f$f$f$f$f"),
        ("f", "$g$g$g$g$g$g$g$g"),
        ("g", "0123456789abcdef"),
    ];
    let r = exr(&bomb, "$a");
    assert_eq!(r.text.len(), MAX_OUTPUT);
    assert!(r.truncated);
    let deep = "${a?".repeat(200) + &"}".repeat(200);
    let r = exr(&[("a", "1")], &deep);
    assert!(r.error);
    let r = lx(&[("a", "1")], &deep, None);
    assert!(r.error);
}

#[test]
fn truncation_cuts_at_a_char_boundary() {
    let opts = Options {
        max_output: 4,
        ..Options::main_cf()
    };
    let r = mac_expand("$a", &opts, &mut table(&[("a", "ab€cd")]));
    assert_eq!(r.text, "ab");
    assert!(r.truncated);
}

#[test]
fn references() {
    assert_eq!(
        referenced_names("$a ${b?$c} $(d) $$e ${{$f} == {1}?{x}}"),
        ["a", "b", "c", "d", "f"]
    );
    assert!(referenced_names("$$ $ ${").is_empty());
}

#[test]
fn local_mode_inserts_values_verbatim() {
    // Without recursion a value's `$` text is not expanded again.
    let m = [("user", "b$ob"), ("home", "/home/$user")];
    assert_eq!(lx(&m, "$home:$user", None).text, "/home/$user:b$ob");
    assert!(!lx(&m, "$home", None).error);
}

#[test]
fn local_mode_filter_censors_values_only() {
    let m = [("extension", "x;rm -rf /")];
    let r = lx(
        &m,
        "|/bin/x $extension;",
        Some("abcdefghijklmnopqrstuvwxyz/"),
    );
    assert_eq!(r.text, "|/bin/x x_rm__rf_/;");
    let r = lx(&m, "${extension?{-$extension}}", Some("x"));
    assert_eq!(r.text, "-x_________");
}

#[test]
fn local_mode_limits() {
    let big = "x".repeat(40_000);
    let m = [("v", big.as_str())];
    let r = lx(&m, "$v$v", None);
    assert_eq!(r.text.len(), 64 * 1024);
    assert!(r.truncated);
    assert!(!lx(&m, "$v", None).truncated);
}

#[test]
fn lookup_modes() {
    let mut seen = Vec::new();
    let mut l = |n: &str, mode: Mode| {
        seen.push((n.to_string(), mode));
        Some("v".to_string())
    };
    let _ = mac_expand("$a ${b?x} ${c:y} ${d?{$e}}", &Options::local(None), &mut l);
    assert_eq!(
        seen,
        [
            ("a".to_string(), Mode::Use),
            ("b".to_string(), Mode::Test),
            ("c".to_string(), Mode::Test),
            ("d".to_string(), Mode::Test),
            ("e".to_string(), Mode::Use),
        ]
    );
}

#[test]
fn fuzz_smoke() {
    for s in [
        "${${${",
        "$(((",
        "${a?{b}:{c}",
        "${user?{${home?{x}}}}",
        "$",
        "$a$b$v",
        "${{$c} <level {4} ? {$v}}",
        "${e:{$$}}",
        "€$€",
        "}{)(",
    ] {
        fuzz(s.as_bytes());
    }
}
