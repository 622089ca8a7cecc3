//! qmgr's side of flow control (Postfix's `in_flow_delay` tokens).
//!
//! One token goes back into the flow pipe for each message qmgr moves from
//! `incoming/` into the active queue; when an incoming scan ends because
//! `incoming/` is empty (not because the active queue is full), the pipe is
//! topped up to `default_process_limit` tokens, and surplus tokens are taken
//! out. So the receivers (cleanup) run freely while qmgr keeps up, and are
//! paced at qmgr's rate once the active queue is full.
//!
//! # Configuration
//! `in_flow_delay` (0: no tokens), `default_process_limit`.

use postern_config::{Config, p};
use postern_sys::flow::Flow;

/// The producer end.
pub struct Tokens {
    flow: Option<Flow>,
    limit: usize,
}

impl Tokens {
    /// Takes the inherited pipe when `in_flow_delay` is on.
    pub fn new(cfg: &Config) -> Tokens {
        let on = !cfg.time(p::IN_FLOW_DELAY).is_zero();
        // Off: descriptors 5 and 6 are not taken (in a test they are not master's).
        Tokens {
            flow: if on { Flow::inherited() } else { None },
            limit: cfg.int(p::DEFAULT_PROCESS_LIMIT).clamp(1, 10_000) as usize,
        }
    }

    fn count(&self, f: &Flow) -> Option<usize> {
        match f.count() {
            Ok(n) => Some(n),
            Err(e) => {
                postern_log::warning(format!("flow control: {e}"));
                None
            }
        }
    }

    /// A message moved from incoming into the active queue.
    pub fn fed(&self) {
        let Some(f) = &self.flow else { return };
        if self.count(f).is_some_and(|n| n < self.limit)
            && let Err(e) = f.put(1)
        {
            postern_log::warning(format!("flow control: {e}"));
        }
    }

    /// The incoming queue is drained: refill to the limit, trim any surplus.
    pub fn caught_up(&self) {
        let Some(f) = &self.flow else { return };
        let Some(n) = self.count(f) else { return };
        let r = if n < self.limit {
            f.put(self.limit - n)
        } else {
            f.get(n - self.limit)
        };
        if let Err(e) = r {
            postern_log::warning(format!("flow control: {e}"));
        }
    }
}
