//! postern-qmgr — the queue manager (Postfix's `qmgr(8)`).
//!
//! One qmgr process owns the active queue. It feeds ready files from
//! `incoming/` (on cleanup's trigger, on master's wake-up) and due files from
//! `deferred/` (every `queue_run_delay`, or at once, retry times ignored, on
//! `postqueue -f`) into `active/` through incremental directory scans
//! ([`postern_queue::Scan`], see `feed`): a scan stops while
//! `qmgr_message_active_limit` messages are active and resumes where it
//! stopped, so the cost per message does not grow with the queue. qmgr
//! resolves each pending recipient to a transport and next hop,
//! and hands batches to the delivery agents with bounded concurrency per
//! destination, round-robin between destinations so one slow destination
//! does not starve the others. Results come back per recipient (see
//! [`worker`]). When a message has no job left, qmgr sends the notices the
//! bounce service owes, then either removes the message (every recipient
//! done) or moves it to `deferred/` with its next retry time as the file's
//! modification time: the message's age clamped to
//! [`minimal_backoff_time`, `maximal_backoff_time`], which doubles the wait
//! on each retry. Expiry is checked after each delivery attempt, as Postfix
//! does: a message older than `maximal_queue_lifetime`
//! (`bounce_queue_lifetime` for the null sender) that still has deferred
//! recipients is returned to its sender (a lifetime of 0 means one try).
//! `soft_bounce = yes` turns every bounce into a deferral (5.x.y → 4.x.y,
//! logged `status=deferred`) and keeps expired mail queued;
//! `defer_transports` defers mail for the listed transports ("deferred
//! transport") until a flush.
//!
//! At start-up qmgr moves everything left in `active/` back to `incoming/`:
//! after a crash those messages are simply tried again (at least once). A
//! lookup table that changed on disk (`transport_maps` after `postmap`) makes
//! qmgr finish its deliveries under way and exit (`table NAME has changed --
//! restarting`), as Postfix's; the next qmgr opens the new table (see `sched`).
//!
//! # Security
//! Queue files are parsed with size limits; a damaged one goes to `corrupt/`
//! and is logged. Nothing a message contains influences which files qmgr
//! touches: names come from directory listings and are validated.
//!
//! Per destination (transport and next hop; the recipient when the
//! recipient limit is 1) qmgr runs Postfix 2.5's concurrency scheduler
//! ([`conc`]): slow start from `initial_destination_concurrency`, positive
//! and negative feedback, and dead-destination detection. A delivery counts
//! as a connection failure when every recipient came back deferred with
//! relay `none` (the agent never reached a server; never for the `error` and
//! `retry` agents, which contact nothing). A dead destination's
//! jobs are deferred at once ("delivery temporarily suspended: REASON") for
//! `minimal_backoff_time`. `*_destination_rate_delay` spaces deliveries
//! (concurrency 1). A message deferred after `delay_warning_time` gets one
//! delay notice through the defer service, which marks `defer/ID`.
//!
//! # Configuration
//! `queue_run_delay`, `soft_bounce`, `defer_transports`, `minimal_backoff_time`, `maximal_backoff_time`,
//! `maximal_queue_lifetime`, `bounce_queue_lifetime`,
//! `qmgr_message_active_limit`, `default_destination_concurrency_limit`,
//! `default_destination_recipient_limit`, `<transport>_destination_*`,
//! `initial_destination_concurrency`,
//! `default_destination_concurrency_{positive,negative}_feedback`,
//! `default_destination_concurrency_failed_cohort_limit`,
//! `default_destination_rate_delay`, `delay_warning_time`,
//! `mydestination`, `local_transport`, `default_transport`, `relayhost`,
//! `default_process_limit` (bounds concurrent deliveries),
//! `fast_flush_domains` (see [`fflush`]), `in_flow_delay` (see [`flow`]).

pub mod conc;
mod feed;
pub mod fflush;
mod finish;
pub mod flow;
pub mod resolve;
mod sched;
pub mod worker;

use postern_server::service::{Env, finish};
use postern_server::skeleton;
use std::ffi::OsString;
use std::process::ExitCode;

pub use sched::run;

/// Daemon entry point.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args = postern_server::skeleton::daemon_args(&args);
    // Postfix's pre_jail_init: the tables are opened before a chroot (master.cf).
    let (ctx, (), resolver) = skeleton::init_open(
        "qmgr",
        &args,
        |_| (),
        |ctx| resolve::Resolver::from_config(&ctx.jailed_config()),
    );
    let env = Env::from_master(&ctx);
    // SIGTERM too asks qmgr to finish its deliveries under way (not only SIGHUP).
    if let Err(e) = postern_sys::signals::install_exit_flags(true) {
        postern_log::fatal(e);
    }
    finish(&ctx, sched::run(&ctx, env, resolver))
}
