//! Golden tests: each directory under `tests/golden/` is one case.
//!
//! * `args`: postconf's arguments, one per line (`-c DIR` is added first).
//! * `main.cf.in`, `master.cf.in` (optional): copied into a temp config dir.
//! * `stdout.ref`, `stderr.ref` (optional, default empty): expected output; `DIR` stands for
//!   the temp dir. `main.cf.ref` (optional): expected main.cf afterwards.
//! * `status` (optional, default 0): expected exit status.
//!
//! The host name is fixed to `vm` so that host-dependent defaults are stable.

use std::ffi::OsString;
use std::fs;
use std::path::Path;

fn run_case(case: &Path) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = tmp.path();
    let dir_s = dir.display().to_string();
    for f in ["main.cf", "master.cf"] {
        let src = case.join(format!("{f}.in"));
        if src.exists() {
            fs::copy(&src, dir.join(f)).map_err(|e| e.to_string())?;
        }
    }
    let read = |n: &str| fs::read_to_string(case.join(n)).unwrap_or_default();
    let mut args: Vec<OsString> = vec!["postconf".into(), "-c".into(), dir.into()];
    args.extend(
        read("args")
            .lines()
            .filter(|l| !l.is_empty())
            .map(OsString::from),
    );
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = postern_postconf::run(args, None, "vm", &mut out, &mut err);
    let norm = |b: Vec<u8>| String::from_utf8_lossy(&b).replace(&dir_s, "DIR");
    let (out, err) = (norm(out), norm(err));
    let mut problems = Vec::new();
    let want_status: u8 = read("status").trim().parse().unwrap_or(0);
    if status != want_status {
        problems.push(format!("status {status}, want {want_status}"));
    }
    if out != read("stdout.ref") {
        problems.push(format!("stdout:\n{out}---- want:\n{}", read("stdout.ref")));
    }
    if err != read("stderr.ref") {
        problems.push(format!("stderr:\n{err}---- want:\n{}", read("stderr.ref")));
    }
    if case.join("main.cf.ref").exists() {
        let got = fs::read_to_string(dir.join("main.cf")).unwrap_or_default();
        if got != read("main.cf.ref") {
            problems.push(format!(
                "main.cf:\n{got}---- want:\n{}",
                read("main.cf.ref")
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[test]
fn golden() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(cases.len() >= 5);
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(e) = run_case(case) {
            failures.push(format!(
                "== {}\n{e}",
                case.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
