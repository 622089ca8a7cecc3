//! The counters themselves (pure; time is passed in).

use postern_ipc::proto::AnvilReply;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// At most this many client identities are tracked.
pub const MAX_CLIENTS: usize = 100_000;

#[derive(Debug, Default)]
struct Entry {
    count: u64,
    window: Option<Instant>,
    rates: [u64; 5],
    last: Option<Instant>,
}

/// Counters by identity.
#[derive(Debug)]
pub struct Table {
    unit: Duration,
    entries: HashMap<String, Entry>,
}

fn rate_index(op: &str) -> Option<usize> {
    Some(match op {
        "connect" => 0,
        "message" => 1,
        "recipient" => 2,
        "newtls" => 3,
        "auth" => 4,
        _ => return None,
    })
}

impl Table {
    /// An empty table with the rate time unit.
    pub fn new(unit: Duration) -> Table {
        Table {
            unit,
            entries: HashMap::new(),
        }
    }

    /// Records one event and returns the counters.
    pub fn event(&mut self, op: &str, ident: &str, now: Instant) -> AnvilReply {
        if self.entries.len() >= MAX_CLIENTS && !self.entries.contains_key(ident) {
            self.expire(now);
        }
        let unit = self.unit;
        let e = self.entries.entry(ident.to_string()).or_default();
        if e.window.is_none_or(|w| now.duration_since(w) >= unit) {
            e.window = Some(now);
            e.rates = [0; 5];
        }
        e.last = Some(now);
        match op {
            "connect" => e.count += 1,
            "disconnect" => e.count = e.count.saturating_sub(1),
            _ => {}
        }
        let rate = match rate_index(op) {
            Some(i) => {
                e.rates[i] += 1;
                e.rates[i]
            }
            None => 0,
        };
        AnvilReply {
            count: e.count,
            rate,
        }
    }

    fn expire(&mut self, now: Instant) {
        let unit = self.unit;
        self.entries
            .retain(|_, e| e.count > 0 || e.last.is_some_and(|l| now.duration_since(l) < unit));
        if self.entries.len() >= MAX_CLIENTS {
            // Still full of active clients: drop idle-longest entries with no connection.
            let mut idle: Vec<(String, Instant)> = self
                .entries
                .iter()
                .filter(|(_, e)| e.count == 0)
                .filter_map(|(k, e)| e.last.map(|l| (k.clone(), l)))
                .collect();
            idle.sort_by_key(|(_, l)| *l);
            for (k, _) in idle.into_iter().take(MAX_CLIENTS / 10) {
                self.entries.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_rates() {
        let mut t = Table::new(Duration::from_secs(60));
        let now = Instant::now();
        assert_eq!(
            t.event("connect", "smtp:1.2.3.4", now),
            AnvilReply { count: 1, rate: 1 }
        );
        assert_eq!(
            t.event("connect", "smtp:1.2.3.4", now),
            AnvilReply { count: 2, rate: 2 }
        );
        assert_eq!(t.event("message", "smtp:1.2.3.4", now).rate, 1);
        assert_eq!(t.event("disconnect", "smtp:1.2.3.4", now).count, 1);
        let later = now + Duration::from_secs(61);
        assert_eq!(
            t.event("connect", "smtp:1.2.3.4", later),
            AnvilReply { count: 2, rate: 1 }
        );
        assert_eq!(
            t.event("lookup", "smtp:5.6.7.8", later),
            AnvilReply { count: 0, rate: 0 }
        );
    }
}
