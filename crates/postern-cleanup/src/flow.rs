//! Flow control on the way in (Postfix's `in_flow_delay`).
//!
//! Before cleanup takes a message it takes one token from the flow pipe that
//! master created and qmgr refills (see `postern_sys::flow`). Without a token
//! it waits for one, at most `in_flow_delay`, then goes on regardless: when
//! mail arrives faster than qmgr moves it into the active queue, every
//! receiver (smtpd, pickup, qmqpd, bounce) slows down to qmgr's pace, and
//! nothing ever waits longer than `in_flow_delay` per message, even with qmgr
//! stopped. A message that had to wait is logged (`flow control: …`).
//!
//! # Configuration
//! `in_flow_delay` (0 turns flow control off).

use postern_config::{Config, p};
use postern_sys::flow::{Flow, Taken};
use std::sync::OnceLock;
use std::time::Duration;

static FLOW: OnceLock<Option<Flow>> = OnceLock::new();

/// Takes the inherited flow pipe (call once at start-up, so that the
/// descriptors become close-on-exec at once).
pub fn init() {
    FLOW.get_or_init(Flow::inherited);
}

/// Takes a token for one message, waiting at most `in_flow_delay`.
pub fn pace(cfg: &Config) {
    let delay = cfg.time(p::IN_FLOW_DELAY).as_secs();
    if delay == 0 {
        return;
    }
    let Some(flow) = FLOW.get_or_init(Flow::inherited) else {
        return;
    };
    match flow.take(Duration::from_secs(delay)) {
        Ok(Taken::AtOnce) => {}
        Ok(Taken::After(d)) => postern_log::info(format!(
            "flow control: waited {:.3}s for the queue manager (in_flow_delay {delay}s)",
            d.as_secs_f64()
        )),
        Ok(Taken::TimedOut) => postern_log::info(format!(
            "flow control: waited in_flow_delay ({delay}s) for the queue manager; going on"
        )),
        Err(e) => postern_log::warning(format!("flow control: {e}")),
    }
}
