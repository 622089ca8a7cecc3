//! The end of a message's stay in the active queue (Postfix's
//! `qmgr_active_done`), run on a worker thread once its last job is done:
//! the non-delivery notice for what bounced, one delay warning after
//! `delay_warning_time`, then either back to `deferred/` with the next retry
//! time as the file's mtime, or removal with the defer log.
//!
//! # Security
//! Touches only the message's own queue file and logs, by validated ID.
//!
//! # Configuration
//! `delay_warning_time` (read by the caller); the bounce and defer services.

use crate::worker;
use postern_config::Config;
use postern_ipc::proto::{BounceOp, BounceRequest};
use postern_queue::Queue;
use std::time::{Duration, SystemTime};

/// `delay_warning_time` (0 = off) has passed for a message of this age.
pub(crate) fn should_warn(warn_after: u64, age: f64) -> bool {
    warn_after > 0 && age >= warn_after as f64
}

/// The line the bounce service appends to `defer/ID` once it sent the delay
/// warning (see postern-bounce's `warn-delay`): status-log readers skip it
/// (it names no recipient), it lives exactly as long as the defer log, and
/// it survives qmgr restarts. A message that later defers again after its
/// log was removed (all delivered) cannot exist, so one warning per message.
pub(crate) const DELAY_WARNED_MARK: &str = "delay_warned=";

fn delay_warned(q: &Queue, id: &str) -> bool {
    match q.read_log("defer", id) {
        Ok(Some(log)) => String::from_utf8_lossy(&log)
            .lines()
            .any(|l| l.starts_with(DELAY_WARNED_MARK)),
        _ => false,
    }
}

pub(crate) fn finish(cfg: &Config, q: &Queue, id: &str, deferred: usize, backoff: u64, warn: bool) {
    let has_bounce_log = matches!(q.read_log("bounce", id), Ok(Some(_)));
    let mut flushed = true;
    if has_bounce_log {
        let req = BounceRequest {
            op: BounceOp::FlushBounce,
            queue_name: "active".into(),
            queue_id: id.into(),
            results: vec![],
        };
        if let Err(e) = worker::bounce_call(cfg, &req) {
            postern_log::warning(format!("{id}: bounce service: {e}; will retry"));
            flushed = false;
        }
    }
    if deferred > 0 && warn && !delay_warned(q, id) {
        let req = BounceRequest {
            op: BounceOp::WarnDelay,
            queue_name: "active".into(),
            queue_id: id.into(),
            results: vec![],
        };
        if let Err(e) = worker::bounce_call(cfg, &req) {
            postern_log::warning(format!("{id}: delay warning: {e}; will retry"));
        }
    }
    if deferred > 0 || !flushed {
        let when = SystemTime::now() + Duration::from_secs(backoff);
        match postern_queue_admin::move_file(q, "active", "deferred", id) {
            Ok(()) => {
                if let Err(e) = postern_queue_admin::set_mtime(q, "deferred", id, when) {
                    postern_log::warning(format!("{id}: set retry time: {e}"));
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => postern_log::warning(format!("{id}: move to deferred: {e}")),
        }
        return;
    }
    if matches!(q.read_log("defer", id), Ok(Some(_))) {
        let req = BounceRequest {
            op: BounceOp::RemoveDeferLog,
            queue_name: "active".into(),
            queue_id: id.into(),
            results: vec![],
        };
        if let Err(e) = worker::bounce_call(cfg, &req) {
            postern_log::warning(format!("{id}: remove defer log: {e}"));
        }
    }
    match postern_queue_admin::remove(q, "active", id) {
        Ok(()) => postern_log::info(format!("{id}: removed")),
        Err(e) if e.is_not_found() => {}
        Err(e) => postern_log::warning(format!("{id}: remove: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_warning_threshold() {
        assert!(!should_warn(0, 1e9), "0 = off");
        assert!(!should_warn(4 * 3600, 3599.0));
        assert!(should_warn(1, 1.0));
        assert!(should_warn(1, 2.5));
    }
}
