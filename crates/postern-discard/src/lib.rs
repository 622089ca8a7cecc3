//! postern-discard — the discard delivery agent (Postfix's discard(8)).
//!
//! Takes a delivery request from qmgr and reports every recipient as
//! delivered without delivering anything. The next hop is the reason that
//! goes into the log and into "success" notifications: with
//! `transport_maps` entry `example.com discard:silently dropped` the log says
//!
//! ```text
//! postfix/discard[PID]: ID: to=<u@example.com>, relay=none, delay=0.01,
//!     delays=0/0/0/0, dsn=2.0.0, status=sent (silently dropped)
//! ```
//!
//! and with an empty next hop in the table (`discard:`) qmgr supplies the
//! recipient domain, which then is the reason, as in Postfix. A next hop that
//! starts with an RFC 3463 code (`2.7.0 dropped by policy`) sets the DSN
//! status; a code of another class than 2 is ignored (2.0.0), with Postfix's
//! `sent: ignoring dsn code` warning.
//!
//! # Security
//! Reads nothing from the message but checks that its queue file exists, as
//! Postfix opens it; moves and deletes no queue file (qmgr marks the
//! recipients done). Takes no command-line arguments.
//!
//! # Errors
//! A missing or unreadable queue file, or an empty next hop, defers every
//! recipient (4.3.0 / 4.3.5) instead of reporting mail as discarded.
//!
//! # Configuration
//! `queue_directory`, `ipc_timeout`, `max_use`, `max_idle`.

use postern_ipc::proto::{Action, DeliverReply, DeliverRequest};
use postern_server::agent;
use postern_server::service::{Env, finish};
use postern_server::skeleton::{self, Context};
use std::ffi::OsString;
use std::process::ExitCode;

/// Daemon entry point.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args = skeleton::daemon_args(&args);
    let ctx = skeleton::init("discard", &args);
    if let Some(a) = ctx.args.first() {
        postern_log::fatal(format!("unexpected command-line argument: {a}"));
    }
    let exit = agent::delivery_server(&ctx, Env::from_master(&ctx), discard);
    finish(&ctx, exit)
}

/// The status and text for a discard with this next hop.
pub fn outcome(nexthop: &str) -> (String, String) {
    let (dsn, text) = postern_mail::dsn::split("2.0.0", nexthop);
    match postern_mail::dsn::for_class(&dsn, '2') {
        Some(fixed) => {
            postern_log::warning(format!("sent: ignoring dsn code \"{dsn}\""));
            (fixed, text.to_string())
        }
        None => (dsn, text.to_string()),
    }
}

fn discard(ctx: &Context, req: &DeliverRequest) -> DeliverReply {
    let start = agent::now();
    if let Some(reply) = agent::nexthop_precheck(ctx, req, start) {
        return reply;
    }
    let (dsn, text) = outcome(&req.nexthop);
    agent::same_for_all(req, start, Action::Sent, &dsn, &text, "none")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_and_status_from_the_nexthop() {
        assert_eq!(
            outcome("example.com"),
            ("2.0.0".into(), "example.com".into())
        );
        assert_eq!(
            outcome("2.7.0 dropped by policy"),
            ("2.7.0".into(), "dropped by policy".into())
        );
        assert_eq!(outcome("5.1.1 nope"), ("2.0.0".into(), "nope".into()));
    }
}
