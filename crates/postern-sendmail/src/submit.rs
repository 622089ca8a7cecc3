//! Building the maildrop file and handing it to postdrop.
//!
//! sendmail never writes the queue itself: it runs `postdrop -r -c DIR`
//! (this executable invoked under the name `postdrop`, or for an ordinary
//! user of a root instance the set-gid copy `DIR/bin/postdrop`), writes the encoded
//! record stream to its stdin and exits 0 only when postdrop exited 0, i.e.
//! after the file and its directory entry were fsynced.

use crate::exit;
use crate::lowargs::LowArgs;
use postern_ipc::proto::cleanup_flags;
use postern_qfile::{QueueFile, RecipientRecord};
use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};

/// Who submits: the real uid and its login name, when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitter {
    /// Real uid.
    pub uid: u32,
    /// Login name of the real uid.
    pub login: Option<String>,
}

/// Builds the maildrop queue file (pure: the caller supplies the time). Who
/// submits is not written: pickup takes it from the owner of the maildrop
/// file that postdrop creates.
pub fn build(
    low: &LowArgs,
    sender: &str,
    fullname: Option<&str>,
    content: Vec<u8>,
    now: (u64, u32),
) -> QueueFile {
    let flags = if low.extract {
        cleanup_flags::EXTRACT_RCPTS
    } else {
        0
    };
    let mut attrs = vec![("flags".to_string(), flags.to_string())];
    if let Some(envid) = &low.envid {
        attrs.push(("envid".into(), envid.clone()));
    }
    if let Some(ret) = low.ret {
        attrs.push(("ret".into(), ret.as_attr().into()));
    }
    attrs.push(("rewrite_context".into(), "local".into()));
    let recipients = low
        .recipients
        .iter()
        .map(|r| RecipientRecord {
            address: r.clone(),
            original: r.clone(),
            notify: low.notify.unwrap_or(0),
            ..Default::default()
        })
        .collect();
    QueueFile {
        arrival: now,
        fullname: fullname.unwrap_or_default().to_string(),
        sender: sender.to_string(),
        attrs,
        recipients,
        content,
        content_offset: 0,
    }
}

/// Header fields whose addresses `-t` extracts.
const RCPT_HEADERS: [&str; 6] = ["To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc"];

/// Whether the header names at least one recipient (the `-t` sanity check
/// done before queueing, so that the submitter hears about it, not a bounce).
pub fn header_has_recipients(content: &[u8]) -> bool {
    postern_mail::header::fields(content).any(|f| {
        RCPT_HEADERS.iter().any(|h| f.name_is(h))
            && !postern_mail::address::parse_address_list(&f.value_string()).is_empty()
    })
}

/// Maps postdrop's wait status to sendmail's exit status and, when postdrop
/// did not explain itself (killed, odd status), a message.
pub fn map_status(status: std::process::ExitStatus) -> (u8, Option<String>) {
    match (status.code(), status.signal()) {
        (Some(0), _) => (exit::OK, None),
        (Some(c), _) if (64..=78).contains(&c) => (c as u8, None),
        (Some(c), _) => (
            exit::TEMPFAIL,
            Some(format!("postdrop exited with status {c}")),
        ),
        (None, Some(sig)) => (
            exit::TEMPFAIL,
            Some(format!("postdrop was killed by signal {sig}")),
        ),
        (None, None) => (exit::TEMPFAIL, Some("postdrop ended abnormally".into())),
    }
}

/// Runs `exe` as `postdrop -r -c DIR`, feeds it `bytes`, and waits.
pub fn handoff(exe: &Path, dir: &Path, bytes: &[u8]) -> Result<(u8, Option<String>), String> {
    let mut child = Command::new(exe)
        .arg0("postdrop")
        .arg("-r")
        .arg("-c")
        .arg(dir)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("execute {} as postdrop: {e}", exe.display()))?;
    let write_result = match child.stdin.take() {
        Some(mut stdin) => stdin.write_all(bytes).and_then(|()| stdin.flush()),
        None => Err(std::io::Error::other("no pipe to postdrop")),
    }; // the pipe closes here, so postdrop sees the end of the stream
    let status = child
        .wait()
        .map_err(|e| format!("wait for postdrop: {e}"))?;
    let (code, msg) = map_status(status);
    match write_result {
        // A write error with a successful postdrop cannot happen (it read
        // everything it stored); with a failed one, its own status explains.
        Err(e) if code == exit::OK => Err(format!("write to postdrop: {e}")),
        _ => Ok((code, msg)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_ipc::proto::notify;

    fn low(argv: &[&str]) -> LowArgs {
        let v: Vec<std::ffi::OsString> = argv.iter().map(Into::into).collect();
        LowArgs::parse(&v).unwrap()
    }

    #[test]
    fn maildrop_file_contract() {
        let l = low(&[
            "sendmail", "-t", "-N", "failure", "-R", "full", "-V", "X1", "a@b",
        ]);
        let mut q = build(
            &l,
            "joe",
            Some("Joe"),
            b"Subject: x\n\nhi\n".to_vec(),
            (17, 5),
        );
        let bytes = postern_qfile::encode(&mut q);
        let back = postern_qfile::parse(&bytes, 1 << 20).unwrap();
        assert_eq!(back.arrival, (17, 5));
        assert_eq!(back.sender, "joe");
        assert_eq!(back.fullname, "Joe");
        assert_eq!(back.attr("flags"), Some("1"));
        assert_eq!(back.attr("origin_uid"), None);
        assert_eq!(back.attr("origin_user"), None);
        assert_eq!(back.attr("envid"), Some("X1"));
        assert_eq!(back.attr("ret"), Some("FULL"));
        assert_eq!(back.attr("rewrite_context"), Some("local"));
        assert_eq!(back.recipients.len(), 1);
        assert_eq!(back.recipients[0].address, "a@b");
        assert_eq!(back.recipients[0].notify, notify::FAILURE);
        assert_eq!(back.content, b"Subject: x\n\nhi\n");
    }

    #[test]
    fn minimal_file() {
        let l = low(&["sendmail", "-f", "<>", "u"]);
        let q = build(&l, "", None, Vec::new(), (1, 0));
        assert_eq!(q.attr("flags"), Some("0"));
        assert_eq!(q.attr("origin_user"), None);
        assert_eq!(q.attr("envid"), None);
        assert_eq!(q.recipients[0].notify, 0);
        assert_eq!(q.sender, "");
    }

    #[test]
    fn extract_check() {
        assert!(header_has_recipients(b"To: a@b\n\nx\n"));
        assert!(header_has_recipients(b"Subject: s\ncc: Joe <j@x>\n\nx\n"));
        assert!(!header_has_recipients(
            b"To: undisclosed-recipients:;\n\nx\n"
        ));
        assert!(!header_has_recipients(b"Subject: s\n\nTo: a@b\n"));
        assert!(!header_has_recipients(b""));
    }

    #[test]
    fn status_mapping() {
        use std::process::ExitStatus;
        assert_eq!(map_status(ExitStatus::from_raw(0)), (0, None));
        assert_eq!(map_status(ExitStatus::from_raw(65 << 8)).0, 65);
        assert_eq!(map_status(ExitStatus::from_raw(1 << 8)).0, 75);
        assert_eq!(map_status(ExitStatus::from_raw(9)).0, 75);
    }

    /// A stand-in postdrop: records its arguments and input, exits with `code`.
    fn fake_postdrop(dir: &Path, code: i32) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let script = dir.join("fake-postdrop");
        let body = format!(
            "#!/bin/sh\necho \"$@\" > {d}/args\ncat > {d}/input\nexit {code}\n",
            d = dir.display()
        );
        std::fs::write(&script, body).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    #[test]
    fn handoff_feeds_postdrop_and_maps_its_status() {
        let d = tempfile::tempdir().unwrap();
        let exe = fake_postdrop(d.path(), 0);
        let r = handoff(&exe, Path::new("/etc/inst"), b"record stream").unwrap();
        assert_eq!(r, (0, None));
        assert_eq!(
            std::fs::read(d.path().join("input")).unwrap(),
            b"record stream"
        );
        let args = std::fs::read_to_string(d.path().join("args")).unwrap();
        assert_eq!(args.trim(), "-r -c /etc/inst");
        let exe = fake_postdrop(d.path(), 78);
        assert_eq!(handoff(&exe, Path::new("/x"), b"y").unwrap(), (78, None));
    }

    /// End to end through the real multi-call binary, when the caller names
    /// it (`POSTERN_BIN=/work/target-cmds/debug/postern cargo test`).
    #[test]
    fn real_postdrop_stores_the_file() {
        let Some(bin) = std::env::var_os("POSTERN_BIN") else {
            eprintln!("POSTERN_BIN not set; skipping the real postdrop test");
            return;
        };
        let d = tempfile::tempdir().unwrap();
        let queue = d.path().join("queue");
        for sub in ["maildrop", "public", "pid"] {
            std::fs::create_dir_all(queue.join(sub)).unwrap();
        }
        std::fs::write(
            d.path().join("main.cf"),
            format!(
                "queue_directory = {}\nmaillog_file = {}/maillog\n",
                queue.display(),
                d.path().display()
            ),
        )
        .unwrap();
        let l = low(&["sendmail", "u@x"]);
        let mut q = build(&l, "me", None, b"hi\n".to_vec(), (1, 0));
        let bytes = postern_qfile::encode(&mut q);
        let r = handoff(Path::new(&bin), d.path(), &bytes).unwrap();
        assert_eq!(r, (0, None));
        let files: Vec<_> = std::fs::read_dir(queue.join("maildrop")).unwrap().collect();
        assert_eq!(files.len(), 1);
        assert_eq!(
            handoff(Path::new(&bin), d.path(), b"garbage").unwrap().0,
            65
        );
    }

    #[test]
    fn missing_postdrop_is_an_error() {
        let r = handoff(Path::new("/nonexistent/postern"), Path::new("/tmp"), b"x");
        assert!(r.unwrap_err().contains("execute"));
    }
}
