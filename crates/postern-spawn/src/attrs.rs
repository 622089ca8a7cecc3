//! spawn's master.cf command attributes (pure): `user=NAME[:GROUP]` (required) and
//! `argv=COMMAND ARGS…` (required, last), as Postfix's spawn(8) reads them; and the
//! accounts a command may never run as.
//!
//! # Security
//! [`refusal`] names the ids Postfix refuses: root, group 0, the mail system owner and its
//! group, and the ids -1.
//!
//! # Configuration
//! None: the attributes come from master.cf's service line.

/// The attributes of a spawn service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attrs {
    /// `user=` account name.
    pub user: String,
    /// `user=NAME:GROUP`'s group name.
    pub group: Option<String>,
    /// The command and its arguments (non-empty, the program non-empty).
    pub argv: Vec<String>,
}

/// A bad attribute list, in Postfix's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttrError {
    /// An attribute other than `user=` and `argv=`.
    #[error("unknown attribute name: {0}")]
    Unknown(String),
    /// No `user=`.
    #[error("missing user= attribute")]
    MissingUser,
    /// No `argv=`.
    #[error("missing argv= attribute")]
    MissingArgv,
    /// `argv=` without a program.
    #[error("argv= attribute names no command")]
    EmptyArgv,
}

/// Parses the arguments after master's options (attribute names in any case, as Postfix).
pub fn parse(args: &[String]) -> Result<Attrs, AttrError> {
    let mut user = None;
    let mut argv = None;
    for (i, a) in args.iter().enumerate() {
        if let Some(v) = strip_prefix_ci(a, "user=") {
            let (u, g) = match v.split_once(':') {
                Some((u, g)) => (u, (!g.is_empty()).then(|| g.to_string())),
                None => (v, None),
            };
            user = Some((u.to_string(), g));
        } else if let Some(v) = strip_prefix_ci(a, "argv=") {
            let mut cmd = vec![v.to_string()];
            cmd.extend(args[i + 1..].iter().cloned());
            argv = Some(cmd);
            break;
        } else {
            return Err(AttrError::Unknown(a.clone()));
        }
    }
    let (user, group) = user.ok_or(AttrError::MissingUser)?;
    let argv = argv.ok_or(AttrError::MissingArgv)?;
    if argv[0].is_empty() {
        return Err(AttrError::EmptyArgv);
    }
    Ok(Attrs { user, group, argv })
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Why the command may not run with `uid`/`gid` (`owner_*`: `mail_owner`'s ids), in
/// Postfix's words; `None` when it may.
pub fn refusal(uid: u32, gid: u32, owner_uid: u32, owner_gid: u32) -> Option<String> {
    Some(if uid == 0 {
        "request to deliver as root".to_string()
    } else if uid == owner_uid {
        "request to deliver as mail system owner".to_string()
    } else if gid == 0 {
        "request to use privileged group id 0".to_string()
    } else if gid == owner_gid {
        format!("request to use mail system owner group id {gid}")
    } else if uid == u32::MAX {
        "user must not have user ID -1".to_string()
    } else if gid == u32::MAX {
        "user must not have group ID -1".to_string()
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn debian_policyd_spf_line() {
        let a = parse(&args("user=nobody argv=/usr/bin/policyd-spf")).unwrap();
        assert_eq!(a.user, "nobody");
        assert_eq!(a.group, None);
        assert_eq!(a.argv, ["/usr/bin/policyd-spf"]);
    }

    #[test]
    fn group_case_and_arguments_after_argv() {
        let a = parse(&args("USER=u:g Argv=/bin/sh -c exit user=x")).unwrap();
        assert_eq!((a.user.as_str(), a.group.as_deref()), ("u", Some("g")));
        assert_eq!(a.argv, ["/bin/sh", "-c", "exit", "user=x"]);
        assert_eq!(parse(&args("user=u: argv=/x")).unwrap().group, None);
    }

    #[test]
    fn bad_lists() {
        assert_eq!(parse(&args("argv=/x")), Err(AttrError::MissingUser));
        assert_eq!(parse(&args("user=u")), Err(AttrError::MissingArgv));
        assert_eq!(parse(&[]), Err(AttrError::MissingUser));
        assert_eq!(parse(&args("user=u argv=")), Err(AttrError::EmptyArgv));
        assert_eq!(
            parse(&args("flags=R user=u argv=/x"))
                .unwrap_err()
                .to_string(),
            "unknown attribute name: flags=R"
        );
        assert_eq!(
            parse(&args("é argv=/x")),
            Err(AttrError::Unknown("é".into()))
        );
    }

    #[test]
    fn refused_accounts() {
        assert_eq!(refusal(1000, 1000, 100, 101), None);
        assert_eq!(
            refusal(0, 1000, 100, 101).unwrap(),
            "request to deliver as root"
        );
        assert_eq!(
            refusal(100, 1000, 100, 101).unwrap(),
            "request to deliver as mail system owner"
        );
        assert_eq!(
            refusal(1000, 0, 100, 101).unwrap(),
            "request to use privileged group id 0"
        );
        assert_eq!(
            refusal(1000, 101, 100, 101).unwrap(),
            "request to use mail system owner group id 101"
        );
        assert!(refusal(u32::MAX, 5, 100, 101).is_some());
        assert!(refusal(5, u32::MAX, 100, 101).is_some());
    }
}
