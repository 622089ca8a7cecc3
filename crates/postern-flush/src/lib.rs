//! postern-flush — the fast flush service (Postfix's `flush(8)`).
//!
//! Keeps, per eligible destination, a log of the queue IDs of mail that was
//! deferred for it (see [`log`]), so that `ETRN site` and `postqueue -s
//! site` can deliver exactly that mail at once instead of the whole
//! deferred queue. A framed-request server (`postern_server::framed`): one
//! `flush/1` request and reply at a time, or master's bare wake-up `W`.
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
//!   `fast_flush_purge_time`. `purge`: sends every log. Unlike Postfix's, the
//!   reply comes when the work is done (no Postern program sends these two).
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
//! `ipc_timeout`, `max_idle`.

pub mod log;

use postern_config::{Config, p};
use postern_ipc::AttrList;
use postern_ipc::flush::{FlushOp, FlushReply, FlushRequest, FlushStatus};
use postern_ipc::proto::trigger;
use postern_queue::Queue;
use postern_server::client;
use postern_server::framed::{Framed, framed_server};
use postern_server::service::{Env, finish};
use postern_server::skeleton::{self, Context};
use postern_table::DomainList;
use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest request frame.
const FRAME_LIMIT: u64 = 1 << 12;

/// Daemon entry point.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args = postern_server::skeleton::daemon_args(&args);
    // fast_flush_domains may name tables: opened before a chroot (master.cf).
    let (ctx, (), service) =
        skeleton::init_open("flush", &args, |_| (), |ctx| Service::new(&ctx.config));
    let env = Env::from_master(&ctx);
    finish(
        &ctx,
        framed_server(&ctx, env, usize::MAX, Arc::new(service)),
    )
}

/// The service. Requests are handled one at a time (`serial`), as by Postfix's
/// single-threaded flush: the logs' fcntl locks exclude other processes only.
struct Service {
    domains: Option<DomainList>,
    refresh: Duration,
    purge: Duration,
    serial: Mutex<()>,
}

impl Service {
    fn new(cfg: &Config) -> Service {
        let value = cfg.str(p::FAST_FLUSH_DOMAINS);
        let parent = postern_table::parent_matches(
            "fast_flush_domains",
            &cfg.str(p::PARENT_DOMAIN_MATCHES_SUBDOMAINS),
        );
        let domains = match DomainList::new(&value, parent, &Default::default()) {
            Ok(l) => Some(l),
            Err(e) => {
                postern_log::warning(format!("fast_flush_domains: {e}"));
                None
            }
        };
        Service {
            domains,
            refresh: cfg.time(p::FAST_FLUSH_REFRESH_TIME),
            purge: cfg.time(p::FAST_FLUSH_PURGE_TIME),
            serial: Mutex::new(()),
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

impl Framed for Service {
    fn frame_limit(&self) -> u64 {
        FRAME_LIMIT
    }

    fn answer(&self, ctx: &Context, req: AttrList) -> Option<AttrList> {
        let _one_at_a_time = self.serial.lock().unwrap_or_else(|p| p.into_inner());
        let q = Queue::new(ctx.config.str(p::QUEUE_DIRECTORY));
        let status = match FlushRequest::from_attrs(&req) {
            Err(e) => {
                postern_log::warning(format!("bad flush request: {e}"));
                FlushStatus::Bad
            }
            Ok(req) if matches!(req.op, FlushOp::Refresh | FlushOp::Purge) => {
                self.refresh(&ctx.config, &q, req.op == FlushOp::Purge);
                FlushStatus::Ok
            }
            Ok(req) => self.execute(&ctx.config, &q, &req),
        };
        Some(FlushReply { status }.to_attrs())
    }

    /// master's wake-up (a bare `W`, told apart from a request by its size, as
    /// Postfix's flush does): a refresh.
    fn wakeup(&self, ctx: &Context, bytes: &[u8]) {
        if bytes != [trigger::WAKEUP] {
            return postern_log::warning("read flush request: unexpected end of file");
        }
        let _one_at_a_time = self.serial.lock().unwrap_or_else(|p| p.into_inner());
        let q = Queue::new(ctx.config.str(p::QUEUE_DIRECTORY));
        self.refresh(&ctx.config, &q, false);
    }
}

fn wake_qmgr(cfg: &Config, byte: u8) {
    if let Err(e) = client::trigger(cfg, "public", "qmgr", &[byte]) {
        postern_log::warning(format!("trigger qmgr: {e}"));
    }
}
