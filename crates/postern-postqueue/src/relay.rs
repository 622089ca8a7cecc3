//! `-p` / `-j`: relay the listing that the showq service produces.
//!
//! The reply is a series of `data` frames ended by `status=0`, or one
//! `status=1 reason=…` frame (see postern-showq). Nothing is printed until
//! the whole reply arrived, so a failure never leaves a listing that looks
//! complete (or an empty queue) on standard output.

use crate::{Fatal, access, exit, fatal};
use postern_config::{Config, p};
use postern_server::client;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;

/// Largest reply frame accepted from showq.
const FRAME_LIMIT: u64 = 1 << 20;

fn request_frame(json: bool) -> postern_ipc::AttrList {
    let mut a = postern_ipc::AttrList::new();
    a.push("proto", "showq/1")
        .push("format", if json { "json" } else { "text" });
    a
}

/// Reads showq's reply into the listing text.
pub(crate) fn read_reply(r: &mut impl std::io::Read) -> Result<Vec<u8>, Fatal> {
    let malformed = || fatal(exit::SOFTWARE, "malformed showq server reply");
    let mut text = Vec::new();
    loop {
        let frame = match client::read_frame(r, FRAME_LIMIT) {
            Ok(Some(f)) => f,
            Ok(None) | Err(_) => return Err(malformed()),
        };
        if let Some(d) = frame.get("data") {
            text.extend_from_slice(d);
            continue;
        }
        return match frame.text("status").as_str() {
            "0" => Ok(text),
            "1" => Err(fatal(
                exit::TEMPFAIL,
                format!("Queue report unavailable: {}", frame.text("reason")),
            )),
            _ => Err(malformed()),
        };
    }
}

/// Lists the queue in text or JSON to `out`.
pub fn list(cfg: &Config, dir: &Path, json: bool, out: &mut impl Write) -> Result<(), Fatal> {
    let service = cfg.str(p::SHOWQ_SERVICE_NAME);
    let timeout = client::ipc_timeout(cfg);
    let text = match client::connect(cfg, "public", &service, timeout) {
        Ok(mut s) => {
            client::write_frame(&mut s, &request_frame(json)).map_err(|e| {
                postern_log::warning(format!("send request to public/{service}: {e}"));
                fatal(exit::SOFTWARE, "malformed showq server reply")
            })?;
            read_reply(&mut s)?
        }
        // (not from the set-gid copy: its gate runs only postdrop and postqueue)
        Err(e) if access::privileged(cfg) && !postern_sys::privs::is_set_id() => {
            postern_log::warning(crate::plain(&e.to_string()));
            return Err(stand_alone(dir, json));
        }
        Err(e) => {
            postern_log::warning(crate::plain(&e.to_string()));
            return Err(fatal(
                exit::UNAVAILABLE,
                "Queue report unavailable - mail system is down",
            ));
        }
    };
    out.write_all(&text)
        .and_then(|()| out.flush())
        .map_err(|e| fatal(exit::IOERR, format!("write standard output: {e}")))
}

/// The mail system is down: root and `mail_owner` run showq themselves
/// (replacing this process). Returns only on failure.
fn stand_alone(dir: &Path, json: bool) -> Fatal {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            return fatal(
                exit::UNAVAILABLE,
                format!("cannot find own executable: {e}"),
            );
        }
    };
    let mut cmd = std::process::Command::new(&exe);
    cmd.arg0("showq")
        .env("POSTERN_DAEMON", "1")
        .arg("-S")
        .arg("-c")
        .arg(dir);
    if json {
        cmd.arg("-j");
    }
    let err = cmd.exec();
    fatal(
        exit::UNAVAILABLE,
        format!("execute {} as showq: {err}", exe.display()),
    )
}
