//! postern-flush — the fast flush service (Postfix's `flush(8)`).
//!
//! Keeps, per eligible destination, a log of the queue IDs of mail that was
//! deferred for it (see [`log`]), so that `ETRN site` and `postqueue -s
//! site` can deliver exactly that mail at once instead of the whole
//! deferred queue. A single server: one `flush/1` request per connection.
//!
//! * `add site id` (from qmgr whenever a recipient at `site` is deferred):
//!   appends `id` to the site's log.
//! * `send_site site`: asks qmgr to forget dead destinations (trigger `U`),
//!   gives every listed message the current time as its retry time and moves
//!   it from `deferred/` to `incoming/`, truncates the log, and triggers qmgr
//!   (`I`).
//! * `send_file id` (`postqueue -i`): the same for one message.
//! * `refresh` (also master's periodic wake-up, a bare `W`): sends logs not
//!   read for `fast_flush_refresh_time`, removes empty logs unchanged for
//!   `fast_flush_purge_time`. `purge`: sends every log.
//!
//! A site not in `fast_flush_domains` (default `$relay_domains`) is denied.
//! Postfix's caveat holds: a send releases every message listed for the
//! site, whatever its other recipients.
//!
//! # Security
//! Not security-sensitive in Postfix's sense (no network, no local users):
//! requests come over the `public/flush` socket from Postern's own programs
//! and are decoded strictly. Site names are mapped to file names of
//! `[a-z0-9_]` only; queue IDs are validated before they name files. The
//! service changes only retry times and moves deferred → incoming (it uses
//! `postern-queue-admin`, as Postfix's flush renames queue files).
//!
//! # Configuration
//! `fast_flush_domains`, `parent_domain_matches_subdomains`,
//! `fast_flush_refresh_time`, `fast_flush_purge_time`, `queue_directory`,
//! `ipc_timeout`, `max_use`, `max_idle`.

pub mod log;

use postern_config::Config;
use postern_ipc::flush::{FlushOp, FlushReply, FlushRequest, FlushStatus};
use postern_ipc::proto::trigger;
use postern_ipc::{AttrList, decode_frame_len};
use postern_queue::Queue;
use postern_server::client;
use postern_server::skeleton::{self, Context};
use postern_table::DomainList;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::Duration;

/// Largest request frame.
const FRAME_LIMIT: u64 = 1 << 12;

/// Daemon entry point.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // fast_flush_domains may name tables: opened before a chroot (master.cf).
    let (ctx, (), service) =
        skeleton::init_open("flush", &args, |_| (), |ctx| Service::new(&ctx.config));
    skeleton::single_server(ctx, move |ctx, stream| service.serve(ctx, stream))
}

/// What a connection asked for.
#[derive(Debug, PartialEq, Eq)]
enum Incoming {
    /// master's wake-up: a bare trigger byte, no frame.
    Wakeup,
    /// A `flush/1` request.
    Request(AttrList),
}

/// Reads a frame, or recognises master's short wake-up (as Postfix's flush
/// tells its two protocols apart by the request size).
fn read_incoming(r: &mut impl Read) -> std::io::Result<Option<Incoming>> {
    let mut hdr = [0u8; 4];
    let mut got = 0;
    while got < hdr.len() {
        match r.read(&mut hdr[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if got == 0 {
        return Ok(None);
    }
    if got < hdr.len() {
        return if hdr[..got] == [trigger::WAKEUP] {
            Ok(Some(Incoming::Wakeup))
        } else {
            Err(std::io::ErrorKind::UnexpectedEof.into())
        };
    }
    let len = decode_frame_len(hdr, FRAME_LIMIT)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    AttrList::decode(&buf)
        .map(|a| Some(Incoming::Request(a)))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

struct Service {
    domains: Option<DomainList>,
    refresh: Duration,
    purge: Duration,
}

impl Service {
    fn new(cfg: &Config) -> Service {
        let value = cfg.get("fast_flush_domains");
        let parent = postern_table::parent_matches(
            "fast_flush_domains",
            &cfg.get("parent_domain_matches_subdomains"),
        );
        let domains = match DomainList::new(&value, parent, &Default::default()) {
            Ok(l) => Some(l),
            Err(e) => {
                postern_log::warning(format!("fast_flush_domains: {e}"));
                None
            }
        };
        let secs = |n: &str, d: u64| Duration::from_secs(cfg.get_time(n).unwrap_or(d));
        Service {
            domains,
            refresh: secs("fast_flush_refresh_time", 12 * 3600),
            purge: secs("fast_flush_purge_time", 7 * 86400),
        }
    }

    /// `fast_flush_domains` decides; a list that failed to load, or a table
    /// lookup error, is a failure (the client retries), not a denial.
    fn eligible(&self, site: &str) -> Result<bool, FlushStatus> {
        let domain = site.trim_start_matches('[').trim_end_matches(']');
        match &self.domains {
            None => Err(FlushStatus::Fail),
            Some(l) => l.matches(domain).map_err(|e| {
                postern_log::warning(format!("fast_flush_domains: {e}"));
                FlushStatus::Fail
            }),
        }
    }

    fn serve(&self, ctx: &Context, mut stream: UnixStream) {
        let timeout = client::ipc_timeout(&ctx.config);
        if let Err(e) = stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
        {
            postern_log::warning(format!("set socket timeout: {e}"));
            return;
        }
        let q = Queue::new(ctx.config.get("queue_directory"));
        let attrs = match read_incoming(&mut stream) {
            Ok(None) => return,
            Ok(Some(Incoming::Wakeup)) => return self.refresh(&ctx.config, &q, false),
            Ok(Some(Incoming::Request(a))) => a,
            Err(e) => return postern_log::warning(format!("read flush request: {e}")),
        };
        let req = match FlushRequest::from_attrs(&attrs) {
            Ok(r) => r,
            Err(e) => {
                postern_log::warning(format!("bad flush request: {e}"));
                return reply(&mut stream, FlushStatus::Bad);
            }
        };
        match req.op {
            FlushOp::Refresh | FlushOp::Purge => {
                // Completes in the background, as with Postfix.
                reply(&mut stream, FlushStatus::Ok);
                drop(stream);
                self.refresh(&ctx.config, &q, req.op == FlushOp::Purge);
            }
            _ => {
                let status = self.execute(&ctx.config, &q, &req);
                reply(&mut stream, status);
            }
        }
    }

    fn execute(&self, cfg: &Config, q: &Queue, req: &FlushRequest) -> FlushStatus {
        if matches!(req.op, FlushOp::Add | FlushOp::SendFile)
            && !postern_queue::valid_id(&req.queue_id)
        {
            return FlushStatus::Bad;
        }
        if matches!(req.op, FlushOp::Add | FlushOp::SendSite) {
            match self.eligible(&req.site) {
                Ok(true) => {}
                Ok(false) => return FlushStatus::Deny,
                Err(s) => return s,
            }
        }
        let path = || log::site_to_path(&req.site).ok_or(FlushStatus::Bad);
        let result = match req.op {
            FlushOp::Add => path().and_then(|p| {
                log::add(q, &p, &req.queue_id).map_err(|e| {
                    postern_log::warning(e);
                    FlushStatus::Fail
                })
            }),
            FlushOp::SendSite => path().and_then(|p| {
                wake_qmgr(cfg, trigger::UNTHROTTLE);
                match log::send(q, &p) {
                    Ok(n) => {
                        if n > 0 {
                            wake_qmgr(cfg, trigger::SCAN_INCOMING);
                        }
                        Ok(())
                    }
                    Err(e) => {
                        postern_log::warning(e);
                        Err(FlushStatus::Fail)
                    }
                }
            }),
            FlushOp::SendFile => {
                if log::release(q, &req.queue_id, std::time::SystemTime::now()) {
                    wake_qmgr(cfg, trigger::UNTHROTTLE);
                    wake_qmgr(cfg, trigger::SCAN_INCOMING);
                }
                Ok(())
            }
            FlushOp::Refresh | FlushOp::Purge => Ok(()),
        };
        result.err().unwrap_or(FlushStatus::Ok)
    }

    fn refresh(&self, cfg: &Config, q: &Queue, all: bool) {
        let max_age = if all { Duration::ZERO } else { self.refresh };
        let (_, released) = log::refresh(q, max_age, self.purge);
        if released {
            wake_qmgr(cfg, trigger::SCAN_INCOMING);
        }
    }
}

fn wake_qmgr(cfg: &Config, byte: u8) {
    if let Err(e) = client::trigger(cfg, "public", "qmgr", &[byte]) {
        postern_log::warning(format!("trigger qmgr: {e}"));
    }
}

fn reply(stream: &mut UnixStream, status: FlushStatus) {
    if let Err(e) = client::write_frame(stream, &FlushReply { status }.to_attrs()) {
        postern_log::warning(format!("send flush reply: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_ipc::encode_frame;

    #[test]
    fn wakeup_and_frames_are_told_apart() {
        assert_eq!(
            read_incoming(&mut &b"W"[..]).unwrap(),
            Some(Incoming::Wakeup)
        );
        assert_eq!(read_incoming(&mut &b""[..]).unwrap(), None);
        assert!(read_incoming(&mut &b"XY"[..]).is_err());
        let req = FlushRequest {
            op: FlushOp::SendSite,
            site: "example.com".into(),
            queue_id: String::new(),
        };
        let frame = encode_frame(&req.to_attrs());
        assert_eq!(
            read_incoming(&mut &frame[..]).unwrap(),
            Some(Incoming::Request(req.to_attrs()))
        );
        let huge = [0xff, 0xff, 0xff, 0xff];
        assert!(read_incoming(&mut &huge[..]).is_err());
    }
}
