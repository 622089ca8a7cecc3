//! Keeps `src/unimplemented.rs` true: every parameter of the table is either read somewhere
//! in the workspace sources or listed as unimplemented, never both.
//!
//! "Read somewhere" is decided mechanically from the production sources (`crates/*/src`,
//! without test files, inline `#[cfg(test)] mod … {}` blocks and `//` lines):
//!
//! * the quoted name appears (`"soft_bounce"`), or its generated constant as `p::SOFT_BOUNCE`;
//! * a `format!` template matches it (`"{pfx}_tls_policy_maps"`, `"smtpd_tls_{suffix}protocols"`;
//!   a template that is nothing but placeholders and underscores matches nothing);
//! * the agents that build names from a prefix: a quoted suffix in postern-smtp counts for
//!   `smtp_` and `lmtp_`, and in postern-qmgr for `default_`, `local_` and `virtual_`
//!   (its per-transport `{transport}_{what}` / `default_{what}` lookups); likewise a constant
//!   `p::DEFAULT_…` in postern-qmgr (`cfg.transport_int(transport, p::DEFAULT_…)`) counts for
//!   `local_…` and `virtual_…`, and `p::SMTP_…` in postern-smtp for `lmtp_…`.
//!
//! The test also checks that `IMPLEMENTED_COMMANDS` is the daemon list of the `postern`
//! executable (`crates/postern/src/main.rs`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use postern_config::PARAMS;
use postern_config::unimplemented::{IMPLEMENTED_COMMANDS, UNIMPLEMENTED};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Production text of one source file: test modules and comment lines removed.
fn production_text(text: &str) -> String {
    let mut end = text.len();
    let mut from = 0;
    while let Some(i) = text[from..].find("#[cfg(test)]") {
        let at = from + i;
        let rest = text[at + "#[cfg(test)]".len()..].trim_start();
        if let Some(r) = rest.strip_prefix("mod ") {
            let head: String = r.chars().take_while(|c| *c != ';' && *c != '{').collect();
            if r[head.len()..].starts_with('{') {
                end = at;
                break;
            }
        }
        from = at + 1;
    }
    text[..end]
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Quoted words made of name characters and `{…}` placeholders.
fn literals(text: &str) -> BTreeSet<String> {
    let b = text.as_bytes();
    let ok = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'{' | b'}');
    let mut out = BTreeSet::new();
    for (i, c) in b.iter().enumerate() {
        if *c != b'"' {
            continue;
        }
        let mut j = i + 1;
        while j < b.len() && ok(b[j]) {
            j += 1;
        }
        if j > i + 1 && j < b.len() && b[j] == b'"' {
            out.insert(text[i + 1..j].to_string());
        }
    }
    out
}

/// Identifiers written after `p::` (the generated parameter constants).
fn constants(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("p::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + 3..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let id: String = rest
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if !id.is_empty() {
            out.insert(id);
        }
    }
    out
}

/// The constant `build.rs` generates for a table name.
fn constant_of(name: &str) -> String {
    let up = name.to_ascii_uppercase();
    if up.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{up}")
    } else {
        up
    }
}

/// Whether `name` matches `template`, whose `{…}` placeholders match any name text.
fn template_matches(template: &str, name: &str) -> bool {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        parts.push(&rest[..open]);
        match rest[open..].find('}') {
            Some(close) => rest = &rest[open + close + 1..],
            None => return false,
        }
    }
    parts.push(rest);
    if parts.iter().all(|p| p.trim_matches('_').is_empty()) {
        return false;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) {
        return false;
    }
    let mut pos = first.len();
    let stop = name.len() - last.len();
    for p in &parts[1..parts.len() - 1] {
        match name[pos..stop].find(p) {
            Some(i) => pos += i + p.len(),
            None => return false,
        }
    }
    pos <= stop
}

/// Table names read by the production sources.
fn used_names() -> BTreeSet<&'static str> {
    let mut files = Vec::new();
    let crates = workspace().join("crates");
    for e in std::fs::read_dir(&crates).expect("crates/").flatten() {
        rust_files(&e.path().join("src"), &mut files);
    }
    let skip = |p: &Path| {
        let f = p.file_name().and_then(|f| f.to_str()).unwrap_or("");
        let s = p.to_string_lossy();
        f == "tests.rs"
            || f == "test.rs"
            || f.ends_with("_tests.rs")
            || s.ends_with("postern-config/src/params.rs")
            || s.ends_with("postern-config/src/unimplemented.rs")
    };
    let scoped: &[(&str, &[&str])] = &[
        ("postern-smtp", &["smtp_", "lmtp_"]),
        ("postern-qmgr", &["default_", "local_", "virtual_"]),
    ];
    let names: BTreeSet<&'static str> = PARAMS.iter().map(|p| p.name).collect();
    let by_constant: std::collections::BTreeMap<String, &'static str> = PARAMS
        .iter()
        .map(|p| (constant_of(p.name), p.name))
        .collect();
    let mut used = BTreeSet::new();
    for f in files.iter().filter(|f| !skip(f)) {
        let text = production_text(&std::fs::read_to_string(f).expect("read source"));
        let lits = literals(&text);
        let krate = f
            .strip_prefix(&crates)
            .ok()
            .and_then(|r| r.iter().next())
            .and_then(|c| c.to_str())
            .unwrap_or("");
        let prefixes = scoped
            .iter()
            .find(|(c, _)| *c == krate)
            .map_or(&[][..], |(_, p)| p);
        for id in constants(&text) {
            let Some(name) = by_constant.get(&id) else {
                continue;
            };
            used.insert(*name);
            // The crate's first prefix names the general row (`default_…`, `smtp_…`).
            if let Some(rest) = prefixes.first().and_then(|pfx| name.strip_prefix(pfx)) {
                for other in prefixes {
                    if let Some(n) = names.get(format!("{other}{rest}").as_str()) {
                        used.insert(*n);
                    }
                }
            }
        }
        for lit in &lits {
            if let Some(n) = names.get(lit.as_str()) {
                used.insert(*n);
            }
            if lit.contains('{') {
                used.extend(names.iter().filter(|n| template_matches(lit, n)));
            }
            for pfx in prefixes {
                if let Some(n) = names.get(format!("{pfx}{lit}").as_str()) {
                    used.insert(*n);
                }
            }
        }
    }
    used
}

#[test]
fn unimplemented_list_matches_the_sources() {
    let used = used_names();
    let listed: BTreeSet<&str> = UNIMPLEMENTED.iter().map(|(n, _)| *n).collect();
    let mut problems = Vec::new();
    for p in PARAMS {
        match (used.contains(p.name), listed.contains(p.name)) {
            (true, true) => problems.push(format!(
                "{} is read by the sources: delete its row from src/unimplemented.rs",
                p.name
            )),
            (false, false) => problems.push(format!(
                "{} is read nowhere: add it to src/unimplemented.rs (or implement it)",
                p.name
            )),
            _ => {}
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn implemented_commands_are_the_daemons() {
    let main = std::fs::read_to_string(workspace().join("crates/postern/src/main.rs"))
        .expect("crates/postern/src/main.rs");
    let start = main.find("fn daemon(").expect("fn daemon");
    let end = main[start..].find("\n}").map_or(main.len(), |e| start + e);
    let mut daemons: Vec<String> = Vec::new();
    for line in main[start..end].lines() {
        let line = line.trim();
        if let Some((names, _)) = line.split_once("=>") {
            for n in names.split('|') {
                let n = n.trim().trim_matches('"');
                if !n.is_empty() && n != "_" {
                    daemons.push(n.to_string());
                }
            }
        }
    }
    daemons.sort();
    let mut listed: Vec<String> = IMPLEMENTED_COMMANDS.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(
        daemons, listed,
        "IMPLEMENTED_COMMANDS must list the daemons of crates/postern/src/main.rs"
    );
}

#[test]
fn helpers() {
    assert!(template_matches(
        "{pfx}_tls_policy_maps",
        "smtp_tls_policy_maps"
    ));
    assert!(template_matches(
        "smtpd_tls_{s}protocols",
        "smtpd_tls_mandatory_protocols"
    ));
    assert!(!template_matches("{pfx}_{n}", "smtp_x"));
    assert!(!template_matches("{a}_x_{b}", "y_z"));
    let t = production_text(
        "a \"x\"\n// \"y\"\n#[cfg(test)]\nmod t;\n\"z\"\n#[cfg(test)]\nmod tests {\n\"w\"\n}",
    );
    assert_eq!(literals(&t).into_iter().collect::<Vec<_>>(), ["x", "z"]);
    let c = constants("cfg.int(p::MAX_USE) + x.bool(postern_config::p::BIFF); top::NOT p::lower");
    assert_eq!(c.into_iter().collect::<Vec<_>>(), ["BIFF", "MAX_USE"]);
    assert_eq!(
        constant_of("2bounce_notice_recipient"),
        "_2BOUNCE_NOTICE_RECIPIENT"
    );
}

#[test]
fn unimplemented_restrictions_are_smtpd_s() {
    let path = workspace().join("crates/postern-smtpd/src/policy/compile.rs");
    let text = std::fs::read_to_string(&path).expect("smtpd policy compiler");
    let Some(start) = text.find("const UNSUPPORTED") else {
        // smtpd keeps no list of its own (it may use this crate's): nothing to compare.
        return;
    };
    let end = text[start..].find("];").map_or(text.len(), |e| start + e);
    let mut smtpd: Vec<&str> = text[start..end].split('"').skip(1).step_by(2).collect();
    smtpd.sort();
    let mut ours = postern_config::unimplemented::UNIMPLEMENTED_RESTRICTIONS.to_vec();
    ours.sort();
    assert_eq!(
        ours, smtpd,
        "UNIMPLEMENTED_RESTRICTIONS must match smtpd's UNSUPPORTED"
    );
}
