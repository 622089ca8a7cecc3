//! `milter_header_checks`: header_checks(5) tables applied to the headers milters
//! added or changed, as Postfix's cleanup does after each milter's edits.
//!
//! The actions are Postfix's for milter headers: REJECT (the message is refused with
//! the table's text), DISCARD, HOLD, FILTER, REDIRECT, IGNORE (the header is dropped),
//! WARN and INFO; the log lines read `ID: milter-header-ACTION: header NAME: VALUE from
//! host[addr]; from=<…> to=<…> proto=… helo=<…>: TEXT`.
//!
//! # Security
//! Header text is used only as a lookup key. A table that cannot be opened or
//! answer defers the message (4.3.0), never lets it pass unchecked.
//!
//! # Configuration
//! `milter_header_checks` (opened per message that has milter header edits).

use super::{Decision, attr};
use crate::checks::{Checks, Class, Edit, LogCtx, Verdict};
use crate::maps::{MapList, Trail};
use crate::process::{Built, Refusal};
use postern_config::{Config, p};
use postern_ipc::proto::{CleanupRequest, CleanupStatus};
use postern_milter::Modification;
use postern_qfile::RecipientRecord;

/// Checks the headers `mods` added or changed; drops IGNOREd ones from `headers`.
/// `Some(decision)` when the message must not be queued as is.
pub(super) fn check(
    cfg: &Config,
    req: &CleanupRequest,
    queue_id: &str,
    built: &mut Built,
    mods: &[Modification],
    headers: &mut Vec<(String, String)>,
) -> Option<Decision> {
    let added: Vec<(&String, &String)> = mods
        .iter()
        .filter_map(|m| match m {
            Modification::AddHeader { name, value }
            | Modification::InsertHeader { name, value, .. } => Some((name, value)),
            Modification::ChangeHeader { name, value, .. } if !value.is_empty() => {
                Some((name, value))
            }
            _ => None,
        })
        .collect();
    if added.is_empty() || cfg.str(p::MILTER_HEADER_CHECKS).trim().is_empty() {
        return None;
    }
    let mut errors = Vec::new();
    let checks = Checks {
        header: MapList::open(cfg, "milter_header_checks", &mut errors),
        ..Default::default()
    };
    if !errors.is_empty() {
        for e in errors {
            postern_log::warning(format!("{e} -- message not accepted, try again later"));
        }
        return Some(defer());
    }
    let ctx = LogCtx {
        qid: queue_id.to_string(),
        origin: match attr(req, "client_address") {
            Some(a) => format!("{}[{a}]", attr(req, "client_name").unwrap_or("unknown")),
            None => "localhost[127.0.0.1]".to_string(),
        },
        sender: Some(built.qf.sender.clone()),
        recip: built.qf.recipients.last().map(|r| r.original.clone()),
        proto: attr(req, "protocol").map(String::from),
        helo: attr(req, "helo_name").map(String::from),
    };
    let (mut v, mut trail) = (Verdict::default(), Trail::default());
    for (name, value) in added {
        let text = format!("{name}:{value}");
        let out = checks.header(Class::Primary, &text, &ctx, &mut v, &mut trail);
        if out.edit == Edit::Drop
            && let Some(i) = headers.iter().position(|(n, x)| n == name && x == value)
        {
            headers.remove(i);
        }
    }
    for (warn, line) in std::mem::take(&mut trail.logs) {
        let line = milter_prefix(&line, queue_id);
        if warn {
            postern_log::warning(line);
        } else {
            postern_log::info(line);
        }
    }
    if let Some(f) = trail.fail {
        return Some(Decision::Refuse(f));
    }
    if v.discard {
        return Some(Decision::Discard);
    }
    built.verdict.hold |= v.hold;
    if let Some(f) = v.filter {
        built.qf.attrs.retain(|(n, _)| n != "filter");
        built.qf.attrs.push(("filter".into(), f));
    }
    if let Some(to) = v.redirect {
        built.qf.recipients = vec![RecipientRecord {
            address: to.clone(),
            original: to,
            ..Default::default()
        }];
    }
    None
}

/// `ID: reject: header …` → `ID: milter-header-reject: header …` (Postfix's names).
fn milter_prefix(line: &str, queue_id: &str) -> String {
    let head = format!("{queue_id}: ");
    match line
        .strip_prefix(&head)
        .and_then(|r| r.split_once(": header "))
    {
        Some((action, rest)) if !action.contains(' ') => {
            format!("{head}milter-header-{action}: header {rest}")
        }
        _ => line.to_string(),
    }
}

fn defer() -> Decision {
    Decision::Refuse(Refusal {
        status: CleanupStatus::Defer,
        reason: "4.3.0 Error: queue file write error".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::milter_prefix;

    #[test]
    fn log_prefix() {
        assert_eq!(
            milter_prefix(
                "Q1: reject: header X-Spam: yes from h[a]; from=<s>: 5.7.1 no",
                "Q1"
            ),
            "Q1: milter-header-reject: header X-Spam: yes from h[a]; from=<s>: 5.7.1 no"
        );
        assert_eq!(milter_prefix("Q1: other text", "Q1"), "Q1: other text");
    }
}
