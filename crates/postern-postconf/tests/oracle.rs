//! Oracle test: every non-host-dependent default of the parameter table must equal what
//! Debian's Postfix (`/usr/sbin/postconf -d`) prints. Skipped, with a notice, when Postfix is
//! not installed.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

const POSTCONF: &str = "/usr/sbin/postconf";

#[test]
fn defaults_match_postfix() {
    if !Path::new(POSTCONF).exists() {
        println!("oracle test skipped: {POSTCONF} not installed");
        return;
    }
    // An empty config dir: no main.cf/master.cf influence on the defaults.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.cf"), "").unwrap();
    std::fs::write(dir.path().join("master.cf"), "").unwrap();
    let out = Command::new(POSTCONF)
        .arg("-c")
        .arg(dir.path())
        .arg("-d")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let oracle: HashMap<&str, &str> = text
        .lines()
        .filter_map(|l| {
            l.split_once(" =")
                .map(|(n, v)| (n, v.strip_prefix(' ').unwrap_or(v)))
        })
        .collect();
    let mut mismatches = Vec::new();
    let mut compared = 0;
    for p in postern_config::PARAMS.iter().filter(|p| !p.host_dependent) {
        match oracle.get(p.name) {
            // Postern-only rows say so at the start of their description.
            None if p.doc.starts_with("Postern:") => {}
            None => mismatches.push(format!("{}: not a Postfix parameter", p.name)),
            Some(v) if *v != p.default => mismatches.push(format!(
                "{}: table {:?}, postconf -d {:?}",
                p.name, p.default, v
            )),
            Some(_) => compared += 1,
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert!(compared >= 300, "only {compared} parameters compared");
}
