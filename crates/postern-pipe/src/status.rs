//! How a command's end becomes a delivery status, as Postfix's
//! `pipe_command()` decides it.
//!
//! | how the command ended | status | text |
//! |---|---|---|
//! | exit 0 | sent 2.0.0 | `delivered via SERVICE service (OUTPUT)` (output trimmed, at most 100 bytes) |
//! | exit ≠ 0, output starts with `4.x.x` / `5.x.x` | defer / bounce with that code | the rest of the output |
//! | exit 64–78 (`<sysexits.h>`) | that code's status ([`SYSEXITS`]): `EX_TEMPFAIL` 75 and `EX_OSERR` 71 defer, the others bounce | `temporary failure. Command output: OUTPUT` |
//! | any other exit status | bounce 5.3.0 | `Command died with status N: "CMD". Command output: OUTPUT` |
//! | killed by a signal | defer 4.3.0 | `Command died with signal N: "CMD"…` |
//! | time limit exceeded (then killed) | bounce 5.3.0 | `Command time limit exceeded: "CMD"…` |
//! | could not be started | defer 4.3.0 | `temporary failure. Command output: pipe: fatal: pipe_command: execvp CMD: …` |
//!
//! Command output (stdout and stderr, the first 4096 bytes) has tabs and
//! newlines turned into spaces and other unprintable bytes into `_`; the
//! `. Command output: …` part is left out when there was none.
//!
//! # Security
//! Pure. The output is untrusted: it is bounded and made printable before it
//! reaches a log line or a notification.

use postern_ipc::proto::Action;

/// How much command output is kept.
pub const OUTPUT_LIMIT: usize = 4096;

/// How the command ended.
#[derive(Debug)]
pub enum Finish {
    /// Exited with this status.
    Exited(i32),
    /// Killed by this signal (not by us).
    Signaled(i32),
    /// Ran past the time limit and was killed.
    TimedOut,
    /// Could not be started.
    SpawnFailed(std::io::Error),
}

/// `<sysexits.h>` codes 64–78: (code, DSN status, text), as Postfix's `sys_exits.c`.
pub const SYSEXITS: &[(i32, &str, &str)] = &[
    (64, "5.3.0", "command line usage error"),
    (65, "5.6.0", "data format error"),
    (66, "5.3.0", "cannot open input"),
    (67, "5.1.1", "user unknown"),
    (68, "5.1.2", "host name unknown"),
    (69, "5.3.0", "service unavailable"),
    (70, "5.3.0", "internal software error"),
    (71, "4.3.0", "system resource problem"),
    (72, "5.3.0", "critical OS file missing"),
    (73, "5.2.0", "can't create user output file"),
    (74, "5.3.0", "input/output error"),
    (75, "4.3.0", "temporary failure"),
    (76, "5.5.0", "remote error in protocol"),
    (77, "5.7.0", "permission denied"),
    (78, "5.3.5", "local configuration error"),
];

/// A delivery status: action, DSN code, text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Sent, deferred or bounced.
    pub action: Action,
    /// RFC 3463 code.
    pub dsn: String,
    /// Reason text.
    pub text: String,
}

impl Status {
    fn new(action: Action, dsn: &str, text: String) -> Status {
        Status {
            action,
            dsn: dsn.to_string(),
            text,
        }
    }

    /// A failure whose class (4 or 5) decides between defer and bounce.
    fn failure(dsn: &str, text: String) -> Status {
        let action = if dsn.starts_with('4') {
            Action::Defer
        } else {
            Action::Bounce
        };
        let dsn = match (action, postern_mail::dsn::for_class(dsn, '5')) {
            (Action::Bounce, Some(fixed)) => fixed,
            _ => dsn.to_string(),
        };
        Status::new(action, &dsn, text)
    }
}

/// Output as Postfix shows it: tabs and newlines become spaces, other
/// unprintable bytes `_`; at most [`OUTPUT_LIMIT`] bytes.
pub fn printable(output: &[u8]) -> String {
    output
        .iter()
        .take(OUTPUT_LIMIT)
        .map(|&b| match b {
            b'\t' | b'\n' => ' ',
            0x20..=0x7e => b as char,
            _ => '_',
        })
        .collect()
}

fn with_output(head: String, out: &str) -> String {
    if out.is_empty() {
        head
    } else {
        format!("{head}. Command output: {out}")
    }
}

/// The status for a command (`command` is the program, `service` the
/// master.cf service name) that ended as `finish` with `output`.
pub fn classify(finish: &Finish, output: &[u8], command: &str, service: &str) -> Status {
    let out = printable(output);
    match finish {
        Finish::Exited(0) => {
            let trimmed = out.trim_end();
            let cut = trimmed
                .char_indices()
                .nth(100)
                .map_or(trimmed, |(i, _)| &trimmed[..i]);
            let shown = if cut.is_empty() {
                String::new()
            } else {
                format!(" ({cut})")
            };
            Status::new(
                Action::Sent,
                "2.0.0",
                format!("delivered via {service} service{shown}"),
            )
        }
        Finish::TimedOut => Status::new(
            Action::Bounce,
            "5.3.0",
            with_output(format!("Command time limit exceeded: \"{command}\""), &out),
        ),
        Finish::Signaled(sig) => Status::new(
            Action::Defer,
            "4.3.0",
            with_output(
                format!("Command died with signal {sig}: \"{command}\""),
                &out,
            ),
        ),
        Finish::SpawnFailed(e) => {
            let why = e.to_string();
            let why = why.split(" (os error").next().unwrap_or(&why);
            Status::new(
                Action::Defer,
                "4.3.0",
                format!(
                    "temporary failure. Command output: pipe: fatal: pipe_command: execvp {command}: {why}"
                ),
            )
        }
        Finish::Exited(code) => {
            if postern_mail::dsn::valid(&out) > 0 {
                let (dsn, text) = postern_mail::dsn::split("5.3.0", &out);
                return Status::failure(&dsn, text.to_string());
            }
            match SYSEXITS.iter().find(|(c, _, _)| c == code) {
                Some((_, dsn, text)) => Status::failure(dsn, with_output(text.to_string(), &out)),
                None => Status::new(
                    Action::Bounce,
                    "5.3.0",
                    with_output(
                        format!("Command died with status {code}: \"{command}\""),
                        &out,
                    ),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(f: Finish, out: &[u8]) -> (Action, String, String) {
        let s = classify(&f, out, "/bin/cmd", "mypipe");
        (s.action, s.dsn, s.text)
    }

    #[test]
    fn exit_codes() {
        assert_eq!(
            c(Finish::Exited(0), b""),
            (
                Action::Sent,
                "2.0.0".into(),
                "delivered via mypipe service".into()
            )
        );
        assert_eq!(
            c(Finish::Exited(0), b"ok\tdone\n\n"),
            (
                Action::Sent,
                "2.0.0".into(),
                "delivered via mypipe service (ok done)".into()
            )
        );
        assert_eq!(
            c(Finish::Exited(75), b"busy\n"),
            (
                Action::Defer,
                "4.3.0".into(),
                "temporary failure. Command output: busy ".into()
            )
        );
        assert_eq!(
            c(Finish::Exited(67), b""),
            (Action::Bounce, "5.1.1".into(), "user unknown".into())
        );
        assert_eq!(
            c(Finish::Exited(1), b"oops\x01"),
            (
                Action::Bounce,
                "5.3.0".into(),
                "Command died with status 1: \"/bin/cmd\". Command output: oops_".into()
            )
        );
        assert_eq!(
            c(Finish::Exited(1), b"4.2.2 over quota\n"),
            (Action::Defer, "4.2.2".into(), "over quota ".into())
        );
        assert_eq!(
            c(Finish::Exited(1), b"2.0.0 fine?"),
            (Action::Bounce, "5.0.0".into(), "fine?".into())
        );
    }

    #[test]
    fn abnormal_ends() {
        assert_eq!(c(Finish::Signaled(9), b"").0, Action::Defer);
        let t = c(Finish::TimedOut, b"partial");
        assert_eq!(
            t,
            (
                Action::Bounce,
                "5.3.0".into(),
                "Command time limit exceeded: \"/bin/cmd\". Command output: partial".into()
            )
        );
        let e = std::io::Error::from_raw_os_error(2);
        assert_eq!(
            c(Finish::SpawnFailed(e), b"").2,
            "temporary failure. Command output: pipe: fatal: pipe_command: execvp /bin/cmd: No such file or directory"
        );
        assert_eq!(printable(&[b'a'; 5000]).len(), OUTPUT_LIMIT);
    }
}
