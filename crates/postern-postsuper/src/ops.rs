//! Carrying out the operations on the queue.
//!
//! Every change is one `postern-queue-admin` call: a delete is one
//! `unlink(2)` (then the message's bounce/defer/trace logs go too), hold,
//! release and requeue are one `rename(2)` each, so a message is always in
//! exactly one queue. Files still being written (ready bit clear) are never
//! touched by `ALL`. A message that vanished meanwhile (delivered, moved by
//! qmgr) is simply not counted.

use crate::args::{Action, Target};
use postern_queue::{LOG_QUEUES, Queue, valid_id};
use postern_queue_admin::{AdminError, move_file, remove, set_mtime};
use std::io::{BufRead, Read};
use std::time::SystemTime;

/// Where output goes: `info` lines (`ID: removed`, summaries) and warnings.
pub trait Report {
    /// An informational line (stderr and log, as Postfix's postsuper).
    fn info(&mut self, text: String);
    /// A warning.
    fn warning(&mut self, text: String);
}

/// The queue a message moves to, if the action moves it.
fn destination(action: Action) -> Option<&'static str> {
    match action {
        Action::Delete => None,
        Action::Hold => Some("hold"),
        Action::Release => Some("deferred"),
        Action::Requeue => Some("maildrop"),
    }
}

/// Applies `action` to `queue/id`. `Ok(false)` when the file is not there.
fn act(
    q: &Queue,
    action: Action,
    queue: &str,
    id: &str,
    r: &mut dyn Report,
) -> Result<bool, AdminError> {
    let result = match destination(action) {
        Some(to) if to == queue => return Ok(false),
        Some(to) => move_file(q, queue, to, id),
        None => remove(q, queue, id),
    };
    match result {
        Ok(()) => {}
        Err(e) if e.is_not_found() => return Ok(false),
        Err(e) => return Err(e),
    }
    match action {
        Action::Delete => {
            for log in LOG_QUEUES {
                if let Err(e) = q.remove_log(log, id) {
                    r.warning(format!("{id}: {e}"));
                }
            }
        }
        Action::Release => {
            // Retry at once: qmgr takes a deferred file whose mtime has passed.
            if let Err(e) = set_mtime(q, "deferred", id, SystemTime::now()) {
                r.warning(format!("{id}: {e}"));
            }
        }
        Action::Hold | Action::Requeue => {}
    }
    Ok(true)
}

/// One queue ID, searched in `queues`; reports `ID: removed` etc.
fn one(q: &Queue, action: Action, queues: &[&str], id: &str, r: &mut dyn Report) -> usize {
    if !valid_id(id) {
        r.warning(format!("invalid mail queue id: {id}"));
        return 0;
    }
    for queue in queues {
        match act(q, action, queue, id, r) {
            Ok(true) => {
                r.info(format!("{id}: {}", action.done_text()));
                return 1;
            }
            Ok(false) => {}
            Err(e) => {
                r.warning(format!("{id}: {e}"));
                return 0;
            }
        }
    }
    0
}

/// Every complete message of `queues` (no per-message lines, as Postfix).
fn all(q: &Queue, action: Action, queues: &[&str], r: &mut dyn Report) -> usize {
    let mut n = 0;
    for queue in queues {
        let entries = match q.list(queue) {
            Ok(e) => e,
            Err(e) => {
                r.warning(e.to_string());
                continue;
            }
        };
        for e in entries.iter().filter(|e| e.ready) {
            match act(q, action, queue, &e.id, r) {
                Ok(true) => n += 1,
                Ok(false) => {}
                Err(err) => r.warning(format!("{}: {err}", e.id)),
            }
        }
    }
    n
}

/// Longest line accepted on standard input.
const MAX_ID_LINE: u64 = 4096;

/// Queue IDs from `input`, one per line (blank lines skipped, white space
/// trimmed, `*`/`!` status marks from `mailq` output tolerated).
fn from_stdin(
    q: &Queue,
    action: Action,
    queues: &[&str],
    input: &mut dyn BufRead,
    r: &mut dyn Report,
) -> usize {
    let mut n = 0;
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut *input).take(MAX_ID_LINE).read_until(b'\n', &mut line) {
            Ok(0) => return n,
            Ok(_) => {}
            Err(e) => {
                r.warning(format!("read standard input: {e}"));
                return n;
            }
        }
        let text = String::from_utf8_lossy(&line);
        let id = text.trim().trim_end_matches(['*', '!']);
        if !id.is_empty() {
            n += one(q, action, queues, id, r);
        }
    }
}

/// Runs every operation, grouped by action in first-seen order, each group
/// followed by its summary line.
pub fn run_ops(
    q: &Queue,
    ops: &[(Action, Target)],
    restrict: &[String],
    input: &mut dyn BufRead,
    r: &mut dyn Report,
) {
    let mut order: Vec<Action> = Vec::new();
    for (a, _) in ops {
        if !order.contains(a) {
            order.push(*a);
        }
    }
    for action in order {
        let queues: Vec<&str> = if restrict.is_empty() {
            action.default_queues().to_vec()
        } else {
            restrict.iter().map(String::as_str).collect()
        };
        let mut n = 0;
        for (_, t) in ops.iter().filter(|(a, _)| *a == action) {
            n += match t {
                Target::Id(id) => one(q, action, &queues, id, r),
                Target::All => all(q, action, &queues, r),
                Target::Stdin => from_stdin(q, action, &queues, input, r),
            };
        }
        r.info(action.summary(n));
    }
}
