//! One delivery job, run on a worker thread: ask the delivery agent, then do
//! the bookkeeping for each recipient result — cross off delivered and
//! bounced recipients in the queue file, and record bounced and deferred ones
//! with the bounce service (which keeps the per-message logs).
//!
//! Order matters for "never lose, rarely duplicate": a bounced recipient is
//! crossed off only after the bounce service confirmed the log entry is
//! durable; a delivered one right after the agent's `sent` reply.

use postern_config::{Config, p};
use postern_ipc::proto::{
    Action, BounceOp, BounceReply, BounceRequest, DeliverReply, DeliverRequest, RcptResult,
    Recipient,
};
use postern_queue::Queue;
use postern_server::client;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A delivery job.
#[derive(Debug, Clone)]
pub struct Job {
    /// The request for the agent.
    pub request: DeliverRequest,
    /// Results qmgr already decided (no agent is asked), e.g. expiry.
    pub decided: Option<Vec<RcptResult>>,
}

/// What the main loop needs to know afterwards.
#[derive(Debug)]
pub struct Outcome {
    /// Queue ID.
    pub queue_id: String,
    /// Recipients still pending (deferred or bookkeeping failed).
    pub deferred: usize,
    /// The scheduler's destination key (set by the scheduler).
    pub dest: Option<crate::resolve::Route>,
    /// The agent could not reach the destination: every recipient was
    /// deferred with relay `none` (what the smtp agent reports when it cannot
    /// connect). The scheduler's negative feedback.
    pub conn_failed: bool,
    /// DSN code and text of the last deferral, for "delivery temporarily
    /// suspended: …".
    pub last_defer: Option<(String, String)>,
}

/// Whether a delivery's results say the agent never reached the
/// destination (no IPC change: derived from the per-recipient results).
/// The error(8) agent (`error`, `retry` services) contacts nothing, so its
/// deferrals never make a destination dead.
pub fn connection_failed(transport: &str, results: &[RcptResult]) -> bool {
    !matches!(transport, "error" | "retry")
        && !results.is_empty()
        && results
            .iter()
            .all(|r| r.action == Action::Defer && (r.relay.is_empty() || r.relay == "none"))
}

fn now_f() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Asks the bounce service to do something.
pub fn bounce_call(cfg: &Config, req: &BounceRequest) -> Result<(), String> {
    let service = match req.op {
        BounceOp::AppendDefer | BounceOp::WarnDelay | BounceOp::RemoveDeferLog => "defer",
        _ => "bounce",
    };
    let timeout = client::ipc_timeout(cfg).min(Duration::from_secs(600));
    let reply = client::request(cfg, "private", service, &req.to_attrs(), 1 << 16, timeout)
        .map_err(|e| e.to_string())?;
    let r = BounceReply::from_attrs(&reply).map_err(|e| e.to_string())?;
    if r.ok { Ok(()) } else { Err(r.reason) }
}

/// Logs a result that no delivery agent logged (qmgr's own decisions).
pub fn log_result(queue_id: &str, req: &DeliverRequest, r: &RcptResult, status: &str) {
    let now = now_f();
    let delay = now - req.arrival;
    let a = (req.active_since - req.arrival).max(0.0);
    let line =
        postern_log::delivery::format_delivery_line(&postern_log::delivery::DeliveryRecord {
            queue_id,
            to: &r.recipient.address,
            orig_to: &r.recipient.original,
            relay: if r.relay.is_empty() { "none" } else { &r.relay },
            delay,
            delays: [a, (delay - a).max(0.0), 0.0, 0.0],
            dsn: &r.dsn,
            status,
            text: &r.text,
        });
    postern_log::info(line);
}

fn fail_all(req: &DeliverRequest, dsn: &str, text: &str, action: Action) -> Vec<RcptResult> {
    req.recipients
        .iter()
        .map(|r| RcptResult {
            recipient: r.clone(),
            action,
            dsn: dsn.to_string(),
            text: text.to_string(),
            relay: "none".into(),
        })
        .collect()
}

/// Runs the job: deliver, then bookkeeping.
pub fn run(cfg: &Config, q: &Queue, job: Job) -> Outcome {
    let req = &job.request;
    if let Some(decided) = &job.decided {
        return book(cfg, q, req, decided);
    }
    let timeout = client::ipc_timeout(cfg);
    let results = match client::request(
        cfg,
        "private",
        &req.transport,
        &req.to_attrs(),
        1 << 24,
        timeout,
    )
    .map_err(|e| e.to_string())
    .and_then(|a| DeliverReply::from_attrs(&a).map_err(|e| e.to_string()))
    {
        Ok(reply) => {
            let mut rs = reconcile(req, reply.results);
            if cfg.bool(p::SOFT_BOUNCE) {
                soft_bounce(&mut rs);
            }
            rs
        }
        Err(e) => {
            postern_log::warning(format!("{}: {} service: {e}", req.queue_id, req.transport));
            let rs = fail_all(req, "4.3.0", "mail transport unavailable", Action::Defer);
            for r in &rs {
                log_result(&req.queue_id, req, r, "deferred");
            }
            rs
        }
    };
    let mut o = book(cfg, q, req, &results);
    o.conn_failed = connection_failed(&req.transport, &results);
    o.last_defer = results
        .iter()
        .rev()
        .find(|r| r.action == Action::Defer)
        .map(|r| (r.dsn.clone(), r.text.clone()));
    o
}

/// `soft_bounce`: the agent's bounces become deferrals (5.x.y → 4.x.y); the
/// agent logged them as deferred already (see `postern_log::delivery`).
fn soft_bounce(results: &mut [RcptResult]) {
    for r in results.iter_mut().filter(|r| r.action == Action::Bounce) {
        r.action = Action::Defer;
        r.dsn = crate::feed::soften(&r.dsn);
    }
}

/// Keeps exactly one result per requested recipient; a recipient the agent
/// did not answer for is deferred (never assumed delivered).
fn reconcile(req: &DeliverRequest, mut got: Vec<RcptResult>) -> Vec<RcptResult> {
    let mut out = Vec::with_capacity(req.recipients.len());
    for want in &req.recipients {
        match got
            .iter()
            .position(|r| r.recipient.offset == want.offset && r.recipient.address == want.address)
        {
            Some(i) => out.push(got.swap_remove(i)),
            None => {
                let r = RcptResult {
                    recipient: want.clone(),
                    action: Action::Defer,
                    dsn: "4.3.0".into(),
                    text: "delivery agent did not report a status".into(),
                    relay: "none".into(),
                };
                log_result(&req.queue_id, req, &r, "deferred");
                out.push(r);
            }
        }
    }
    out
}

/// Records results; returns how many recipients remain pending.
pub fn book(cfg: &Config, q: &Queue, req: &DeliverRequest, results: &[RcptResult]) -> Outcome {
    let mut deferred = 0;
    let mark = |r: &Recipient| match q.mark_done(&req.queue_name, &req.queue_id, r.offset) {
        Ok(()) | Err(postern_queue::ReadError::NotFound(_)) => true,
        Err(e) => {
            postern_log::warning(format!("{}: cross off <{}>: {e}", req.queue_id, r.address));
            false
        }
    };
    let bounced: Vec<RcptResult> = results
        .iter()
        .filter(|r| r.action == Action::Bounce)
        .cloned()
        .collect();
    let defers: Vec<RcptResult> = results
        .iter()
        .filter(|r| r.action == Action::Defer)
        .cloned()
        .collect();
    for r in results.iter().filter(|r| r.action == Action::Sent) {
        if !mark(&r.recipient) {
            deferred += 1;
        }
    }
    if !bounced.is_empty() {
        let breq = BounceRequest {
            op: BounceOp::AppendBounce,
            queue_name: req.queue_name.clone(),
            queue_id: req.queue_id.clone(),
            results: bounced.clone(),
        };
        match bounce_call(cfg, &breq) {
            Ok(()) => {
                for r in &bounced {
                    if !mark(&r.recipient) {
                        deferred += 1;
                    }
                }
            }
            Err(e) => {
                postern_log::warning(format!(
                    "{}: bounce service: {e}; recipients stay queued",
                    req.queue_id
                ));
                deferred += bounced.len();
            }
        }
    }
    if !defers.is_empty() {
        deferred += defers.len();
        let dreq = BounceRequest {
            op: BounceOp::AppendDefer,
            queue_name: req.queue_name.clone(),
            queue_id: req.queue_id.clone(),
            results: defers,
        };
        if let Err(e) = bounce_call(cfg, &dreq) {
            postern_log::warning(format!("{}: defer service: {e}", req.queue_id));
        }
        crate::fflush::add(cfg, &req.queue_id, &dreq.results);
    }
    Outcome {
        queue_id: req.queue_id.clone(),
        deferred,
        dest: None,
        conn_failed: false,
        last_defer: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(action: Action, dsn: &str, relay: &str) -> RcptResult {
        RcptResult {
            recipient: Recipient::default(),
            action,
            dsn: dsn.into(),
            text: "x".into(),
            relay: relay.into(),
        }
    }

    #[test]
    fn dead_destination_needs_an_agent_that_connects() {
        let all_none = [res(Action::Defer, "4.4.1", "none")];
        assert!(connection_failed("smtp", &all_none));
        assert!(
            !connection_failed("retry", &all_none),
            "retry: contacts nothing"
        );
        assert!(!connection_failed("error", &all_none));
        assert!(!connection_failed(
            "smtp",
            &[res(Action::Defer, "4.4.1", "mx[1.2.3.4]:25")]
        ));
        assert!(!connection_failed("smtp", &[]));
    }

    #[test]
    fn soft_bounce_turns_bounces_into_deferrals() {
        let mut rs = vec![
            res(Action::Bounce, "5.1.1", "x"),
            res(Action::Sent, "2.0.0", "x"),
        ];
        soft_bounce(&mut rs);
        assert_eq!(rs[0].action, Action::Defer);
        assert_eq!(rs[0].dsn, "4.1.1");
        assert_eq!(rs[1].action, Action::Sent);
    }
}
