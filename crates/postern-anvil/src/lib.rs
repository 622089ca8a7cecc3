//! postern-anvil — connection and rate counters (Postfix's `anvil(8)`).
//!
//! One anvil process per instance counts, per (service, client address):
//! simultaneous connections, and connections, messages, recipients, new TLS
//! sessions and AUTH attempts per `anvil_rate_time_unit`. smtpd processes keep
//! a connection open and send one `anvil/1` request per event; the reply
//! carries the counters, and smtpd decides (the limits are smtpd's
//! parameters). Counters of a client with no connection and no activity for
//! a full time unit are dropped. Every `anvil_status_update_time` anvil logs
//! the largest counts seen, as Postfix does.
//!
//! # Security
//! Only local processes reach anvil (private socket). Memory is bounded: at
//! most `MAX_CLIENTS` identities are kept; past that, the oldest idle ones go.
//!
//! # Configuration
//! `anvil_rate_time_unit`, `anvil_status_update_time`.

mod table;

use postern_ipc::AttrList;
use postern_ipc::proto::AnvilRequest;
use postern_server::framed::{Framed, framed_server};
use postern_server::service::{Env, finish};
use postern_server::skeleton::Context;
use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest request frame.
const FRAME_LIMIT: u64 = 4096;

/// Daemon entry point: the counters on the framed-request skeleton.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args = postern_server::skeleton::daemon_args(&args);
    let ctx = postern_server::skeleton::init("anvil", &args);
    let unit = ctx
        .config
        .time(postern_config::p::ANVIL_RATE_TIME_UNIT)
        .max(Duration::from_secs(1));
    let anvil = Arc::new(Anvil::new(unit));
    finish(
        &ctx,
        framed_server(&ctx, Env::from_master(&ctx), usize::MAX, anvil),
    )
}

/// The service: one table of counters shared by every connection.
pub struct Anvil {
    counters: Mutex<table::Table>,
}

impl Anvil {
    /// Counters with rates per `unit`.
    pub fn new(unit: Duration) -> Anvil {
        Anvil {
            counters: Mutex::new(table::Table::new(unit)),
        }
    }
}

impl Framed for Anvil {
    fn frame_limit(&self) -> u64 {
        FRAME_LIMIT
    }

    fn answer(&self, _ctx: &Context, req: AttrList) -> Option<AttrList> {
        let req = match AnvilRequest::from_attrs(&req) {
            Ok(r) => r,
            Err(e) => {
                postern_log::warning(format!("bad anvil request: {e}"));
                return None;
            }
        };
        let mut t = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let reply = t.event(&req.op, &req.ident, std::time::Instant::now());
        Some(reply.to_attrs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_ipc::proto::AnvilReply;

    /// The service on the framed skeleton's callback: one table for every
    /// connection, a request it cannot decode closes the session.
    #[test]
    fn answers_share_one_table() {
        let ctx = Context::new("anvil", postern_config::Config::new(Default::default()));
        let anvil = Anvil::new(Duration::from_secs(60));
        let ask = |op: &str| {
            let req = AnvilRequest {
                op: op.into(),
                ident: "smtp:192.0.2.1".into(),
            };
            let reply = anvil.answer(&ctx, req.to_attrs()).expect("a reply");
            AnvilReply::from_attrs(&reply).expect("an anvil reply")
        };
        assert_eq!(ask("connect"), AnvilReply { count: 1, rate: 1 });
        assert_eq!(ask("connect"), AnvilReply { count: 2, rate: 2 });
        assert_eq!(ask("disconnect").count, 1);
        let mut bad = AttrList::new();
        bad.push("proto", "other/1");
        assert!(anvil.answer(&ctx, bad).is_none());
    }
}
