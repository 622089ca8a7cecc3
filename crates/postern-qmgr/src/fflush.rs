//! The fast flush service's side of a deferral (Postfix's `flush_add`, which
//! its `defer_append` calls): for every site a message was just deferred
//! to, tell the flush service, so that `ETRN site` / `postqueue -s site`
//! can find the message. Only when `fast_flush_domains` is not empty; the
//! service decides eligibility and answers "deny" for other sites.
//!
//! # Configuration
//! `fast_flush_domains` (default `$relay_domains`), `flush_service_name`.

use postern_config::{Config, p};
use postern_ipc::flush::{FlushOp, FlushRequest, FlushStatus};
use postern_ipc::proto::RcptResult;

/// The distinct recipient domains of `results` (lower-cased, first seen first).
pub fn sites(results: &[RcptResult]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in results {
        let Some((_, domain)) = r.recipient.address.rsplit_once('@') else {
            continue;
        };
        let d = domain.to_ascii_lowercase();
        if !d.is_empty() && !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

/// Records `queue_id` under each site of the deferred `results`.
pub fn add(cfg: &Config, queue_id: &str, results: &[RcptResult]) {
    if cfg.str(p::FAST_FLUSH_DOMAINS).trim().is_empty() {
        return;
    }
    for site in sites(results) {
        let req = FlushRequest {
            op: FlushOp::Add,
            site,
            queue_id: queue_id.to_string(),
        };
        match postern_server::client::flush(cfg, &req) {
            Ok(FlushStatus::Ok | FlushStatus::Deny) => {}
            Ok(_) | Err(_) => {
                postern_log::warning(format!("{queue_id}: flush service failure"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_ipc::proto::{Action, Recipient};

    #[test]
    fn one_site_per_domain() {
        let r = |a: &str| RcptResult {
            recipient: Recipient::new(a),
            action: Action::Defer,
            dsn: "4.4.1".into(),
            text: String::new(),
            relay: "none".into(),
        };
        let rs = [
            r("a@Example.com"),
            r("b@example.COM"),
            r("c@other.test"),
            r("local"),
        ];
        assert_eq!(sites(&rs), ["example.com", "other.test"]);
    }
}
