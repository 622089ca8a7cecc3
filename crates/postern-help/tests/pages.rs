//! Keeps the manual true to the code: every page parses and renders cleanly, every daemon
//! and command of the `postern` executable has a page, the main.cf page lists the whole
//! parameter table, and each page's CONFIGURATION PARAMETERS are exactly what its crates
//! read.
//!
//! "Read" is decided from the production sources of the crates a page names in its
//! `crates:` header (`crates/NAME/src`, without test files, `#[cfg(test)] mod` blocks and
//! `//` lines):
//!
//! * every quoted parameter name in those sources must be on the page;
//! * every parameter on the page must be read: quoted, matched by a `format!` template
//!   with a literal part (`"{pfx}_tls_policy_maps"`), or, for the agents that build names
//!   from a prefix and a quoted suffix, `smtp_`/`lmtp_` + suffix (postern-smtp) and
//!   `default_` + suffix (postern-qmgr).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use postern_help::{Page, find, pages, roff};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(workspace().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn all() -> Vec<Page> {
    pages().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_page_parses_and_renders() {
    let all = all();
    assert!(all.len() >= 28, "{} pages", all.len());
    let mut names = BTreeSet::new();
    for p in &all {
        assert!(names.insert(p.name.clone()), "duplicate page {}", p.name);
        assert!(
            p.name.starts_with("postern"),
            "{}: pages are named postern*",
            p.name
        );
        let text = postern_help::plain(p);
        assert!(text.starts_with(&format!("{}({})", p.name.to_uppercase(), p.section)));
        assert!(text.is_ascii(), "{}: non-ASCII text", p.name);
        let r = roff(p);
        assert!(r.starts_with(".TH \"POSTERN"), "{}", p.name);
        assert!(r.contains("\n.SH NAME\n"), "{}", p.name);
        for line in r.lines() {
            assert!(
                !line.starts_with('\''),
                "{}: line starts with ': {line}",
                p.name
            );
            assert!(!line.is_empty(), "{}: empty roff line", p.name);
            if line.starts_with('.') {
                let req = line.split(' ').next().unwrap_or_default();
                assert!(
                    postern_help::roff::REQUESTS.contains(&req),
                    "{}: content became a request: {line}",
                    p.name
                );
            }
        }
        if p.section != 5 {
            for s in ["SYNOPSIS", "DESCRIPTION", "SEE ALSO"] {
                assert!(p.section(s).is_some(), "{}: no {s} section", p.name);
            }
        }
    }
}

#[test]
fn roff_escapes_content() {
    let src = "name: postern-x\nsection: 1\nsummary: s\n\n# DESCRIPTION\n.dot -dash \\\\back\n\n\
               - 'quote\n  body\n\n| .verbatim\n";
    let p = postern_help::page::parse("x", src).unwrap_or_else(|e| panic!("{e}"));
    let r = roff(&p);
    assert!(r.contains("\n\\&.dot \\-dash \\eback\n"), "{r}");
    assert!(r.contains("\n\\&'quote\n"), "{r}");
    assert!(r.contains("\n\\&.verbatim\n"), "{r}");
}

#[test]
fn bad_sources_are_refused() {
    for src in [
        "name: x\nsection: 2\nsummary: s\n",
        "name: x\nsection: 1\n",
        "name: x\nsection: 1\nsummary: s\n\ntext before a section\n",
        "name: x\nsection: 1\nsummary: s\n\n# S\nan **unclosed marker\n",
        "name: x\nsection: 1\nsummary: s\n\n# S\n@params no_such_parameter_anywhere\n",
        "name: x\nsection: 1\nsummary: s\n\n# S\n- item\nunindented body\n",
    ] {
        assert!(postern_help::page::parse("x", src).is_err(), "{src:?}");
    }
}

/// The names in the match arms of `fn NAME` in main.rs (`"smtp" => …`, `"a" | "b" => …`).
fn arms(main: &str, func: &str) -> Vec<String> {
    let start = main
        .find(&format!("fn {func}("))
        .unwrap_or_else(|| panic!("no fn {func} in main.rs"));
    let body = &main[start..];
    let end = body.find("\n}\n").unwrap_or(body.len());
    let mut out = Vec::new();
    for line in body[..end].lines() {
        let Some((pat, _)) = line.split_once("=>") else {
            continue;
        };
        for alt in pat.split('|') {
            let alt = alt.trim();
            if let Some(n) = alt.strip_prefix('"').and_then(|a| a.strip_suffix('"')) {
                out.push(n.to_string());
            }
        }
    }
    out
}

#[test]
fn every_daemon_and_command_has_a_page() {
    let main = read("crates/postern/src/main.rs");
    let daemons = arms(&main, "daemon");
    let commands = arms(&main, "command");
    assert!(
        daemons.len() >= 18 && commands.len() >= 10,
        "{daemons:?} {commands:?}"
    );
    for (names, section) in [(&daemons, 8), (&commands, 1)] {
        for n in names {
            let p = find(n).unwrap_or_else(|e| panic!("{e}"));
            let p = p.unwrap_or_else(|| panic!("no manual page for {n}"));
            assert_eq!(p.section, section, "{n} resolves to {}", p.name);
            assert!(p.commands.contains(n), "{}: `commands:` lacks {n}", p.name);
        }
    }
    for n in postern_config::unimplemented::IMPLEMENTED_COMMANDS {
        assert!(
            daemons.iter().any(|d| d == n),
            "{n} is not a daemon of main.rs"
        );
    }
    for n in [
        "retry",
        "postern",
        "main.cf",
        "master.cf",
        "postern-main.cf.5",
        "mailq",
    ] {
        assert!(matches!(find(n), Ok(Some(_))), "{n}");
    }
    assert!(matches!(find("postern-bogus"), Ok(None)));
    assert!(matches!(find("postqueue.8"), Ok(None)));
}

#[test]
fn every_control_verb_has_an_entry() {
    let control = read("crates/postern-control/src/lib.rs");
    let mut verbs: Vec<String> = arms(&control, "main")
        .into_iter()
        .filter(|v| !v.starts_with('-'))
        .collect();
    verbs.extend(["init", "man", "help"].map(String::from));
    for v in verbs {
        let text = postern_help::verb_help(&v).unwrap_or_else(|e| panic!("{e}"));
        let text = text.unwrap_or_else(|| panic!("postern(1) has no COMMANDS entry for {v}"));
        assert!(text.starts_with("SYNOPSIS\n"), "{text}");
    }
    assert!(matches!(postern_help::verb_help("bogus"), Ok(None)));
    let usage = postern_help::usage().unwrap_or_else(|e| panic!("{e}"));
    assert!(usage.starts_with("usage: postern "), "{usage}");
}

#[test]
fn command_help_is_the_page_synopsis_and_options() {
    for n in [
        "sendmail",
        "mailq",
        "postqueue",
        "postconf",
        "postmap",
        "postalias",
        "postern",
    ] {
        let help = postern_help::command_help(n).unwrap_or_else(|e| panic!("{e}"));
        let help = help.unwrap_or_else(|| panic!("no help for {n}"));
        let Some(p) = find(n).ok().flatten() else {
            panic!("{n}")
        };
        let whole = postern_help::plain(&p);
        assert!(help.starts_with("SYNOPSIS\n"), "{n}: {help}");
        for title in ["SYNOPSIS", "OPTIONS"] {
            if let Some(s) = p.section(title) {
                let text = postern_help::plain::section(s);
                assert!(help.contains(&text), "{n}: --help lacks the page's {title}");
                assert!(
                    whole.contains(text.trim_end()),
                    "{n}: {title} differs from the page"
                );
            }
        }
    }
    assert!(matches!(
        postern_help::command_help("nonexistent"),
        Ok(None)
    ));
}

#[test]
fn main_cf_page_lists_every_parameter() {
    let Some(p) = find("main.cf").ok().flatten() else {
        panic!("no main.cf page")
    };
    let listed: BTreeSet<String> = p.params().into_iter().collect();
    let table: BTreeSet<String> = postern_config::PARAMS
        .iter()
        .map(|p| p.name.to_string())
        .collect();
    assert_eq!(listed, table);
    let text = postern_help::plain(&p);
    assert!(
        text.contains("    myhostname (default:"),
        "host-dependent rows are listed"
    );
}

/// Production text of one source file: `#[cfg(test)] mod` blocks and `//` lines removed.
fn production(text: &str) -> String {
    let cut = text.find("#[cfg(test)]\nmod ").unwrap_or(text.len());
    text[..cut]
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Out-of-line test modules (`tests.rs`, `test.rs`, `*_tests.rs`, `tests_*.rs`).
fn is_test_file(p: &Path) -> bool {
    let f = p.file_name().and_then(|f| f.to_str()).unwrap_or("");
    f == "tests.rs" || f == "test.rs" || f.ends_with("_tests.rs") || f.starts_with("tests_")
}

/// Quoted words of name characters and `{…}` placeholders in a crate's production sources.
fn quoted(krate: &str) -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") && !is_test_file(&p) {
                out.push(p);
            }
        }
    }
    // `CRATE` or `CRATE/PATH` (a directory or file under the crate's src/: a page that
    // covers only part of a shared crate, as smtpd covers postern-tls/server).
    let (name, sub) = krate.split_once('/').unwrap_or((krate, ""));
    let root = workspace().join("crates").join(name).join("src").join(sub);
    let mut files = Vec::new();
    if root.is_file() {
        files.push(root);
    } else {
        walk(&root, &mut files);
    }
    assert!(!files.is_empty(), "crate {krate} has no sources");
    let mut out = BTreeSet::new();
    for f in files {
        let text = production(&std::fs::read_to_string(&f).unwrap_or_default());
        let b = text.as_bytes();
        let name_char = |c: u8| c.is_ascii_alphanumeric() || b"_{}".contains(&c);
        for (i, _) in text.match_indices('"') {
            let len = b[i + 1..].iter().take_while(|c| name_char(**c)).count();
            if len > 0 && b.get(i + 1 + len) == Some(&b'"') {
                out.insert(text[i + 1..i + 1 + len].to_string());
            }
        }
        // Typed reads: `p::NAME` (postern_config's generated constants) is parameter `name`.
        for (i, _) in text.match_indices("p::") {
            if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') {
                continue;
            }
            let start = i + 3;
            let len = b[start..]
                .iter()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || **c == b'_')
                .count();
            // A name that starts with a digit has a leading underscore (`_2BOUNCE_…`).
            let upper = text[start..start + len].trim_start_matches('_');
            // The table's spelling (`tls_append_default_CA`), else the lowercase form.
            let name = postern_config::PARAMS
                .iter()
                .find(|p| p.name.eq_ignore_ascii_case(upper))
                .map_or_else(|| upper.to_ascii_lowercase(), |p| p.name.to_string());
            if len > 0 {
                out.insert(name);
            }
        }
    }
    out
}

/// Whether `name` matches a `format!` template (each `{…}` matches any run of characters).
fn matches_template(template: &str, name: &str) -> bool {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        parts.push(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            return false;
        };
        rest = &rest[open + close + 1..];
    }
    parts.push(rest);
    let literal: String = parts.concat();
    if literal.replace('_', "").is_empty() {
        return false;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name.ends_with(last) || name.len() < first.len() + last.len() {
        return false;
    }
    let mut at = first.len();
    let end = name.len() - last.len();
    for part in &parts[1..parts.len() - 1] {
        match name[at..end].find(part) {
            Some(i) => at += i + part.len(),
            None => return false,
        }
    }
    true
}

#[test]
fn daemon_pages_list_what_their_crates_read() {
    let table: BTreeSet<&str> = postern_config::PARAMS.iter().map(|p| p.name).collect();
    let mut checked = 0;
    for p in all() {
        if p.crates.is_empty() {
            continue;
        }
        checked += 1;
        let listed: BTreeSet<String> = p.params().into_iter().collect();
        let mut exact = BTreeSet::new();
        let mut templates = BTreeSet::new();
        let mut prefixed = BTreeSet::new();
        for c in &p.crates {
            let prefixes: &[&str] = match c.as_str() {
                "postern-smtp" => &["smtp_", "lmtp_"],
                "postern-qmgr" => &["default_"],
                _ => &[],
            };
            for q in quoted(c) {
                if table.contains(q.as_str()) {
                    exact.insert(q.clone());
                }
                for pf in prefixes {
                    prefixed.insert(format!("{pf}{q}"));
                }
                if q.contains('{') {
                    templates.insert(q);
                }
            }
        }
        let missing: Vec<&String> = exact.iter().filter(|n| !listed.contains(*n)).collect();
        assert!(
            missing.is_empty(),
            "pages/{}.{}: add `@params` {missing:?} (read by {:?})",
            p.name,
            p.section,
            p.crates
        );
        let unread: Vec<&String> = listed
            .iter()
            .filter(|n| {
                !(exact.contains(*n)
                    || prefixed.contains(*n)
                    || templates.iter().any(|t| matches_template(t, n)))
            })
            .collect();
        assert!(
            unread.is_empty(),
            "pages/{}.{}: {unread:?} are listed but {:?} never read them",
            p.name,
            p.section,
            p.crates
        );
    }
    assert!(checked >= 20, "{checked} pages name their crates");
}

#[test]
fn see_also_references_exist() {
    let all = all();
    let names: BTreeSet<String> = all
        .iter()
        .map(|p| format!("{}({})", p.name, p.section))
        .collect();
    for p in &all {
        let text = postern_help::plain(p);
        for sect in ["(1)", "(5)", "(8)"] {
            for (at, _) in text.match_indices(sect) {
                let head = &text[..at];
                let start = head
                    .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
                    .map_or(0, |i| i + 1);
                let name = format!("{}{sect}", &head[start..]);
                if name.starts_with("postern") {
                    assert!(
                        names.contains(&name),
                        "{}: reference to missing page {name}",
                        p.name
                    );
                }
            }
        }
    }
}
