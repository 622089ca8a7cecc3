//! The delivery record: one log line per recipient and delivery attempt, in
//! the format Postfix's delivery agents write and log tools parse:
//!
//! ```text
//! 4F2A1B2C4D: to=<u@example.com>, orig_to=<alias@example.com>, relay=local,
//!     delay=0.12, delays=0.05/0.01/0/0.06, dsn=2.0.0, status=sent (delivered to mailbox)
//! ```
//!
//! (one line; wrapped here). `delay` is the time from arrival to the end of
//! this attempt; `delays` splits it into a = before the active queue,
//! b = in the active queue before this delivery, c = connection setup,
//! d = transmission.
//!
//! Times are printed as Postfix does with `delay_logging_resolution_limit`:
//! at most two significant digits and at most `resolution` decimals, trailing
//! zeros removed, values of ten seconds or more as whole seconds, so
//! `0` `0.01` `0.12` `1.2` `9.9` `10` `123`.
//!
//! This module is pure but for one process-wide switch: with
//! `soft_bounce = yes` ([`set_soft_bounce`], set by the delivery agents at
//! start) a `bounced` record is written as Postfix's soft bounce writes it,
//! `status=deferred` with the 5.x.y status turned into 4.x.y (qmgr turns the
//! agent's result the same way). [`crate::info`] writes the line.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static SOFT_BOUNCE: AtomicBool = AtomicBool::new(false);

/// `soft_bounce`: bounces are logged (and must be reported) as deferrals.
pub fn set_soft_bounce(on: bool) {
    SOFT_BOUNCE.store(on, Ordering::Relaxed);
}

/// What one delivery attempt produced, for the log.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryRecord<'a> {
    /// Queue ID.
    pub queue_id: &'a str,
    /// Recipient address.
    pub to: &'a str,
    /// Original recipient (logged only when non-empty and different from `to`).
    pub orig_to: &'a str,
    /// Where it went (`local`, `host[addr]:port`, `none`).
    pub relay: &'a str,
    /// Seconds from arrival to the end of this attempt.
    pub delay: f64,
    /// The a/b/c/d split of the delay, in seconds.
    pub delays: [f64; 4],
    /// Enhanced status code (`2.0.0`).
    pub dsn: &'a str,
    /// `sent`, `deferred`, `bounced`…
    pub status: &'a str,
    /// Free text (goes between parentheses).
    pub text: &'a str,
}

/// Postfix's default `delay_logging_resolution_limit`.
pub const DEFAULT_RESOLUTION: u32 = 2;

/// Formats one time value (seconds) as described in the module docs.
/// Negative and non-finite values (clock jumps) print as `0`.
pub fn format_delay(secs: f64, resolution: u32) -> String {
    if !secs.is_finite() || secs <= 0.0 {
        return "0".to_string();
    }
    if secs >= 9.95 || resolution == 0 {
        return format!("{}", secs.round() as u64);
    }
    // Two significant digits: one decimal from 1 s up, two below, then cap.
    let sig_decimals = if secs >= 1.0 {
        1
    } else if secs >= 0.1 {
        2
    } else {
        3 + (-secs.log10()).floor() as usize - 1
    };
    let decimals = sig_decimals.min(resolution.min(6) as usize);
    let mut s = format!("{secs:.decimals$}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    s
}

/// The delivery line for `r`, with the default resolution.
pub fn format_delivery_line(r: &DeliveryRecord<'_>) -> String {
    format_delivery_line_with(r, DEFAULT_RESOLUTION)
}

/// The delivery line for `r` with a given `delay_logging_resolution_limit`.
pub fn format_delivery_line_with(r: &DeliveryRecord<'_>, resolution: u32) -> String {
    let soft = SOFT_BOUNCE.load(Ordering::Relaxed) && r.status == "bounced";
    let (status, dsn) = if soft {
        let rest = r.dsn.strip_prefix('5').unwrap_or(r.dsn);
        ("deferred", format!("4{rest}"))
    } else {
        (r.status, r.dsn.to_string())
    };
    let mut s = format!("{}: to=<{}>", r.queue_id, r.to);
    if !r.orig_to.is_empty() && r.orig_to != r.to {
        // write! to a String cannot fail.
        let _infallible = write!(s, ", orig_to=<{}>", r.orig_to);
    }
    let d: Vec<String> = r
        .delays
        .iter()
        .map(|&v| format_delay(v, resolution))
        .collect();
    let _infallible = write!(
        s,
        ", relay={}, delay={}, delays={}, dsn={}, status={} ({})",
        r.relay,
        format_delay(r.delay, resolution),
        d.join("/"),
        dsn,
        status,
        r.text
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_formatting() {
        let cases = [
            (0.0, "0"),
            (-3.0, "0"),
            (f64::NAN, "0"),
            (0.004, "0"),
            (0.005, "0.01"),
            (0.0123, "0.01"),
            (0.1, "0.1"),
            (0.123, "0.12"),
            (0.5, "0.5"),
            (1.0, "1"),
            (1.234, "1.2"),
            (9.9, "9.9"),
            (9.96, "10"),
            (10.4, "10"),
            (123.6, "124"),
        ];
        for (v, want) in cases {
            assert_eq!(format_delay(v, 2), want, "{v}");
        }
        assert_eq!(format_delay(0.123, 1), "0.1");
        assert_eq!(format_delay(0.123, 0), "0");
    }

    #[test]
    fn line() {
        let mut r = DeliveryRecord {
            queue_id: "4F2A1B2C4D",
            to: "u@example.com",
            orig_to: "u@example.com",
            relay: "local",
            delay: 0.12,
            delays: [0.05, 0.01, 0.0, 0.06],
            dsn: "2.0.0",
            status: "sent",
            text: "delivered to mailbox",
        };
        assert_eq!(
            format_delivery_line(&r),
            "4F2A1B2C4D: to=<u@example.com>, relay=local, delay=0.12, delays=0.05/0.01/0/0.06, dsn=2.0.0, status=sent (delivered to mailbox)"
        );
        r.orig_to = "alias@example.com";
        assert!(
            format_delivery_line(&r)
                .contains("to=<u@example.com>, orig_to=<alias@example.com>, relay=local")
        );
    }

    #[test]
    fn soft_bounce_logs_a_deferral() {
        let r = DeliveryRecord {
            queue_id: "ABC",
            to: "u@x",
            orig_to: "",
            relay: "none",
            delay: 0.0,
            delays: [0.0; 4],
            dsn: "5.1.1",
            status: "bounced",
            text: "no",
        };
        set_soft_bounce(true);
        let soft = format_delivery_line(&r);
        set_soft_bounce(false);
        assert!(soft.ends_with("dsn=4.1.1, status=deferred (no)"), "{soft}");
        assert!(format_delivery_line(&r).ends_with("dsn=5.1.1, status=bounced (no)"));
    }
}
