//! postern-error — the error and retry delivery agents (Postfix's error(8)).
//!
//! One program, two services; the master.cf service name says which:
//!
//! * `error`: every recipient of the request **bounces**. The next hop is the
//!   reason: `transport_maps` entry `old.example error:5.1.1 Mailbox
//!   unavailable` gives `dsn=5.1.1, status=bounced (Mailbox unavailable)`;
//!   without a leading status code the status is 5.0.0 and the whole next hop
//!   is the text (`default_transport = error:outside mail is not deliverable`).
//! * `retry`: every recipient is **deferred**, with 4.0.0 unless the next hop
//!   starts with a 4.x.x code.
//!
//! A code of the wrong class (a 4.x.x code for `error`, a 5.x.x code for
//! `retry`) is replaced by 5.0.0 or 4.0.0, with Postfix's `bounce_append:
//! ignoring dsn code "…"` or `defer_append: …` warning. The result goes back
//! to qmgr, which writes the bounce or defer log and, for `error`, the
//! non-delivery notification; the log line names `relay=none`:
//!
//! ```text
//! postfix/error[PID]: ID: to=<u@old.example>, relay=none, delay=0.02,
//!     delays=0.01/0/0/0, dsn=5.1.1, status=bounced (Mailbox unavailable)
//! ```
//!
//! # Security
//! Reads nothing from the message but checks that its queue file exists, as
//! Postfix opens it; moves and deletes no queue file. Takes no command-line
//! arguments. Another service name than `error` or `retry` is a fatal
//! configuration error, as in Postfix (`bad error service name`).
//!
//! # Errors
//! A missing queue file or an empty next hop defers (4.3.0 / 4.3.5).
//!
//! # Configuration
//! `queue_directory`, `ipc_timeout`, `max_use`, `max_idle`.

use postern_ipc::proto::{Action, DeliverReply, DeliverRequest};
use postern_server::agent;
use postern_server::service::{Env, finish};
use postern_server::skeleton::{self, Context};
use std::ffi::OsString;
use std::process::ExitCode;

/// What the service does with every recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The `error` service: bounce.
    Bounce,
    /// The `retry` service: defer.
    Defer,
}

impl Mode {
    /// The mode for a master.cf service name.
    pub fn for_service(service: &str) -> Option<Mode> {
        match service {
            "error" => Some(Mode::Bounce),
            "retry" => Some(Mode::Defer),
            _ => None,
        }
    }
}

/// Daemon entry point.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args = skeleton::daemon_args(&args);
    let ctx = skeleton::init("error", &args);
    if let Some(a) = ctx.args.first() {
        postern_log::fatal(format!("unexpected command-line argument: {a}"));
    }
    let Some(mode) = Mode::for_service(&ctx.service) else {
        postern_log::fatal(format!("bad error service name: {}", ctx.service));
    };
    let exit = agent::delivery_server(&ctx, Env::from_master(&ctx), move |ctx, req| {
        fail(ctx, req, mode)
    });
    finish(&ctx, exit)
}

/// The action, status and text for this mode and next hop.
pub fn outcome(mode: Mode, nexthop: &str) -> (Action, String, String) {
    let (action, default, class, who) = match mode {
        Mode::Bounce => (Action::Bounce, "5.0.0", '5', "bounce_append"),
        Mode::Defer => (Action::Defer, "4.0.0", '4', "defer_append"),
    };
    let (dsn, text) = postern_mail::dsn::split(default, nexthop);
    let dsn = match postern_mail::dsn::for_class(&dsn, class) {
        Some(fixed) => {
            postern_log::warning(format!("{who}: ignoring dsn code \"{dsn}\""));
            fixed
        }
        None => dsn,
    };
    (action, dsn, text.to_string())
}

fn fail(ctx: &Context, req: &DeliverRequest, mode: Mode) -> DeliverReply {
    let start = agent::now();
    if let Some(reply) = agent::nexthop_precheck(ctx, req, start) {
        return reply;
    }
    let (action, dsn, text) = outcome(mode, &req.nexthop);
    agent::same_for_all(req, start, action, &dsn, &text, "none")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services() {
        assert_eq!(Mode::for_service("error"), Some(Mode::Bounce));
        assert_eq!(Mode::for_service("retry"), Some(Mode::Defer));
        assert_eq!(Mode::for_service("other"), None);
    }

    #[test]
    fn texts_and_codes() {
        let o = |m, n| outcome(m, n);
        assert_eq!(
            o(Mode::Bounce, "5.1.1 Mailbox unavailable"),
            (Action::Bounce, "5.1.1".into(), "Mailbox unavailable".into())
        );
        assert_eq!(
            o(Mode::Bounce, "outside mail is not deliverable"),
            (
                Action::Bounce,
                "5.0.0".into(),
                "outside mail is not deliverable".into()
            )
        );
        assert_eq!(
            o(Mode::Bounce, "4.7.1 try"),
            (Action::Bounce, "5.0.0".into(), "try".into())
        );
        assert_eq!(
            o(Mode::Defer, "4.4.1 later please"),
            (Action::Defer, "4.4.1".into(), "later please".into())
        );
        assert_eq!(
            o(Mode::Defer, "example.com"),
            (Action::Defer, "4.0.0".into(), "example.com".into())
        );
        assert_eq!(
            o(Mode::Defer, "5.1.1 x"),
            (Action::Defer, "4.0.0".into(), "x".into())
        );
    }
}
