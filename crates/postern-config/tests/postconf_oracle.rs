//! Differential test of `mac_expand` against Debian's Postfix `postconf -x` (the oracle):
//! the same main.cf, every nested `${name?{…}:{…}}` and relational form, must expand to the
//! same values. Skipped (passes) when /usr/sbin/postconf is not installed.

use std::process::Command;

const MAIN_CF: &str = r#"xa = A
xe =
xn = 5
xr = $xe
relayhost = ${xa?{$xa-yes}:{no}}
myorigin = ${nope?{x}:{$xa$xa}}
smtpd_banner = ${xe:{empty}} ${xa:{not}} ${xr?set}
mail_name = $$xa ${xa}$(xa)
bounce_notice_recipient = ${{$xn} > {3} ? {big} : {small}} ${{3.6} <level {3.10} ? {lt}}
delay_notice_recipient = ${xa?{${xe?{in}:{out}}}}
error_notice_recipient = ${{$xa} == {A} ? {eq}} ${{$xa} != {A} ? {ne} : {same}}
2bounce_notice_recipient = ${xa?{ a b }} x${xe?y}x $nope.
"#;

const NAMES: &[&str] = &[
    "relayhost",
    "myorigin",
    "smtpd_banner",
    "mail_name",
    "bounce_notice_recipient",
    "delay_notice_recipient",
    "error_notice_recipient",
    "2bounce_notice_recipient",
];

/// postconf folds runs of white space in what it prints.
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn same_expansions_as_postconf() {
    let postconf = std::path::Path::new("/usr/sbin/postconf");
    if !postconf.exists() {
        eprintln!("skipped: no /usr/sbin/postconf");
        return;
    }
    let dir = std::env::temp_dir().join(format!("postern-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.cf"), MAIN_CF).unwrap();
    std::fs::write(dir.join("master.cf"), "").unwrap();
    let out = Command::new(postconf)
        .arg("-c")
        .arg(&dir)
        .arg("-xh")
        .args(NAMES)
        .output()
        .unwrap();
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!("{}: {e}", dir.display());
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(squash)
        .collect();
    let cfg = postern_config::Config::new(postern_config::parse_main_cf(MAIN_CF).unwrap());
    let ours: Vec<String> = NAMES.iter().map(|n| squash(&cfg.get(n))).collect();
    assert_eq!(ours, theirs);
}
