//! Connection reuse inside one delivery agent process (Postfix's scache
//! idea, simplified): a session whose transaction completed stays open for
//! `smtp_connection_cache_time_limit` and serves the next request for the
//! same next hop (after RSET). A reaper thread sends QUIT to expired ones.

use crate::result::Peer;
use crate::session::{self, Settings};
use crate::tls::Stream;
use postern_smtp_proto::EhloCaps;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// An open, idle session.
#[derive(Debug)]
pub struct Cached {
    /// Transport kind and next hop.
    pub key: String,
    /// The connection.
    pub stream: Stream,
    /// What the peer offered (after STARTTLS, if any).
    pub caps: EhloCaps,
    /// Who it is.
    pub peer: Peer,
    /// Settings for the final QUIT.
    pub settings: Settings,
    /// When it must be closed.
    pub expires: Instant,
}

static CACHE: Mutex<Vec<Cached>> = Mutex::new(Vec::new());
static REAPER: Once = Once::new();

fn expired(now: Instant) -> Vec<Cached> {
    let mut v = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let (old, keep): (Vec<_>, Vec<_>) = v.drain(..).partition(|c| c.expires <= now);
    *v = keep;
    old
}

fn close(list: Vec<Cached>) {
    for mut c in list {
        session::quit(&mut c.stream, &c.settings);
    }
}

/// Takes the idle session for `key`, if one has not expired.
pub fn take(key: &str) -> Option<Cached> {
    close(expired(Instant::now()));
    let mut v = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let i = v.iter().position(|c| c.key == key)?;
    Some(v.swap_remove(i))
}

/// Keeps `c` until `c.expires` (one session per key: an older one is closed).
pub fn put(c: Cached) {
    REAPER.call_once(|| {
        let _reaper = std::thread::Builder::new().name("scache".into()).spawn(|| {
            loop {
                std::thread::sleep(Duration::from_millis(250));
                close(expired(Instant::now()));
            }
        });
    });
    let old = {
        let mut v = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        let old = v
            .iter()
            .position(|o| o.key == c.key)
            .map(|i| v.swap_remove(i));
        v.push(c);
        old
    };
    if let Some(o) = old {
        close(vec![o]);
    }
}

/// Number of idle sessions (tests).
pub fn len() -> usize {
    CACHE.lock().unwrap_or_else(|e| e.into_inner()).len()
}
