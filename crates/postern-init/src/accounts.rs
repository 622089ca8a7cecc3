//! The `mail_owner` account and the `setgid_group` group of a root install: created
//! when missing (as Debian's Postfix package does in its maintainer scripts), with the
//! exact commands printed when that is impossible.
//!
//! # Security
//! The account is a system account that cannot log in (`/usr/sbin/nologin`, no
//! password) whose home is the queue directory, not created by useradd. Names are
//! checked against the portable user-name syntax before they reach a command line;
//! the commands run with an argument vector, never through a shell.
//!
//! # Configuration
//! `mail_owner`, `setgid_group`, `queue_directory` (the home).

use anyhow::{Result, bail};
use std::path::Path;
use std::process::Command;

/// The shell of the mail_owner account.
const NOLOGIN: &str = "/usr/sbin/nologin";

/// A name useradd/groupadd accept everywhere: `[a-z_][a-z0-9_-]*`, at most 32 bytes.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 32
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// The commands that create what is missing (argument vectors).
fn commands(
    user: &str,
    group: &str,
    home: &Path,
    need_user: bool,
    need_group: bool,
    user_group_exists: bool,
) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    if need_group {
        out.push(vec!["groupadd".into(), "--system".into(), group.into()]);
    }
    if need_user {
        let mut c: Vec<String> = vec![
            "useradd".into(),
            "--system".into(),
            "--no-create-home".into(),
            "--home-dir".into(),
            home.display().to_string(),
            "--shell".into(),
            NOLOGIN.into(),
        ];
        if user_group_exists {
            c.extend(["--gid".into(), user.into()]);
        } else {
            c.push("--user-group".into());
        }
        c.push(user.into());
        out.push(c);
    }
    out
}

/// Makes sure `user` and `group` exist; returns what was created, e.g. "created system
/// user postfix and group postdrop", or `None` when both existed.
pub(crate) fn ensure(user: &str, group: &str, home: &Path) -> Result<Option<String>> {
    if user == group {
        bail!(
            "mail_owner and setgid_group must differ (both are '{user}'): the set-gid group must give no access to the queue beyond maildrop/ and public/"
        );
    }
    let need_user = postern_sys::privs::lookup_user(user)?.is_none();
    let need_group = postern_sys::privs::lookup_group(group)?.is_none();
    if !need_user && !need_group {
        return Ok(None);
    }
    for n in [user, group] {
        if !valid_name(n) {
            bail!("cannot create the account or group '{n}': not a portable user name");
        }
    }
    let user_group_exists = postern_sys::privs::lookup_group(user)?.is_some();
    let cmds = commands(user, group, home, need_user, need_group, user_group_exists);
    // The commands still to run when command `i` fails.
    let manual = |i: usize| {
        cmds[i..]
            .iter()
            .map(|c| c.join(" "))
            .collect::<Vec<_>>()
            .join(" && ")
    };
    for (i, c) in cmds.iter().enumerate() {
        let prog = ["/usr/sbin", "/sbin", "/usr/bin"]
            .iter()
            .map(|d| Path::new(d).join(&c[0]))
            .find(|p| p.is_file());
        let Some(prog) = prog else {
            bail!(
                "{} not found: create the accounts with: {}",
                c[0],
                manual(i)
            );
        };
        let out = Command::new(&prog).args(&c[1..]).output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => bail!(
                "{} failed ({}): {}; create the accounts with: {}",
                c.join(" "),
                o.status,
                String::from_utf8_lossy(&o.stderr).trim(),
                manual(i)
            ),
            Err(e) => bail!(
                "run {}: {e}; create the accounts with: {}",
                prog.display(),
                manual(i)
            ),
        }
    }
    Ok(Some(match (need_user, need_group) {
        (true, true) => format!("created system user {user} and group {group}"),
        (true, false) => format!("created system user {user}"),
        _ => format!("created group {group}"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_commands() {
        for ok in ["postfix", "postdrop", "postern_t123", "_mail", "a-b"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "Root", "1x", "a b", "a;b", "-o", &"x".repeat(33)] {
            assert!(!valid_name(bad), "{bad}");
        }
        let c = commands("pf", "pd", Path::new("/q"), true, true, false);
        assert_eq!(c[0].join(" "), "groupadd --system pd");
        assert_eq!(
            c[1].join(" "),
            "useradd --system --no-create-home --home-dir /q --shell /usr/sbin/nologin --user-group pf"
        );
        let c = commands("pf", "pd", Path::new("/q"), true, false, true);
        assert_eq!(c.len(), 1);
        assert!(c[0].join(" ").ends_with("--gid pf pf"));
    }
}
