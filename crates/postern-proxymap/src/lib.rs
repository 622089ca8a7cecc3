//! proxymap(8) — table lookups on behalf of other daemons.
//!
//! # Description
//! A daemon that cannot open a table itself (it runs chrooted, or as `mail_owner` while
//! the table is readable only by root) names it `proxy:TYPE:NAME`; its lookups then come
//! here over `$queue_directory/private/proxymap`, one `proxymap/1` request and reply per
//! lookup (`postern_ipc::proxymap`), on a connection the client keeps. One process serves
//! many clients (the event-server skeleton) and opens each table once per combination of
//! name and lookup flags, so that many daemons share one open table.
//!
//! Only tables listed as `proxy:TYPE:NAME` in `proxy_read_maps` are served. Any other is
//! refused with Postfix's log lines:
//!
//! ```text
//! warning: request for unapproved table: "hash:/etc/postfix/x"
//! warning: to approve this table for read-only access, list proxy:hash:/etc/postfix/x in main.cf:proxy_read_maps
//! ```
//!
//! A table that cannot be opened or answer makes the request fail with a "retry" status,
//! so the client defers. When a table file changes, the process logs `table NAME has
//! changed -- restarting`, stops accepting, answers the requests under way, closes each
//! connection after its reply and exits when the last one is gone; clients reconnect to
//! a fresh process (the framed-request skeleton, `postern_server::framed`). The
//! `proxywrite` service (read-write tables) is not implemented: it serves the same
//! read-only lookups.
//!
//! # Security
//! Runs as `mail_owner` (master.cf's unprivileged column) unless the administrator says
//! otherwise. A request's table name is only compared against the approved list; keys are
//! only looked up. Frames are bounded by `PROXY_FRAME_LIMIT`.
//!
//! # Configuration
//! `proxy_read_maps`, `max_idle`, `max_use`, `queue_directory`.

use postern_config::p;
use postern_ipc::AttrList;
use postern_ipc::proxymap::{
    FLAG_FOLD_CASE, PROXY_FRAME_LIMIT, ProxyReply, ProxyRequest, ProxyStatus,
};
use postern_server::framed::{Framed, framed_server};
use postern_server::service::{Env, finish};
use postern_server::skeleton::Context;
use postern_table::{BoxMap, OpenOptions};
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

/// The tables a proxymap serves: the `proxy:` entries of `proxy_read_maps`, without the
/// prefix. Entries are separated by commas and whitespace; `{…}` groups stay whole.
pub fn approved_tables(proxy_read_maps: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut depth = 0usize;
    let mut token = String::new();
    let mut flush = |token: &mut String| {
        let mut t = token.as_str();
        if t.starts_with("proxy:") {
            while let Some(rest) = t.strip_prefix("proxy:") {
                t = rest;
            }
            if t.contains(':') {
                out.insert(t.to_string());
            }
        }
        token.clear();
    };
    for c in proxy_read_maps.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth == 0 && (c == ',' || c.is_whitespace()) {
            flush(&mut token);
        } else {
            token.push(c);
        }
    }
    flush(&mut token);
    out
}

/// The service's state: the approved list and the tables opened so far.
pub struct Proxy {
    approved: HashSet<String>,
    open: Mutex<HashMap<(String, u32), Arc<BoxMap>>>,
}

impl Proxy {
    /// A proxy serving `approved` tables.
    pub fn new(approved: HashSet<String>) -> Self {
        Proxy {
            approved,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self, name: &str, flags: u32) -> Result<Arc<BoxMap>, String> {
        let mut open = match self.open.lock() {
            Ok(o) => o,
            Err(p) => p.into_inner(),
        };
        if let Some(m) = open.get(&(name.to_string(), flags)) {
            return Ok(m.clone());
        }
        let opts = OpenOptions {
            fold_case: flags & FLAG_FOLD_CASE != 0,
            ..OpenOptions::default()
        };
        let map = Arc::new(postern_table::open(name, &opts).map_err(|e| e.to_string())?);
        open.insert((name.to_string(), flags), map.clone());
        Ok(map)
    }

    /// Answers one request.
    pub fn answer(&self, req: &ProxyRequest) -> ProxyReply {
        let reply = |status, value: String| ProxyReply { status, value };
        let mut name = req.table.as_str();
        while let Some(rest) = name.strip_prefix("proxy:") {
            name = rest;
        }
        if !name.contains(':') {
            return reply(ProxyStatus::Bad, format!("bad table name \"{name}\""));
        }
        if !self.approved.contains(name) {
            postern_log::warning(format!("request for unapproved table: \"{name}\""));
            postern_log::warning(format!(
                "to approve this table for read-only access, list proxy:{name} in main.cf:proxy_read_maps"
            ));
            return reply(ProxyStatus::Deny, String::new());
        }
        let map = match self.table(name, req.flags) {
            Ok(m) => m,
            Err(e) => {
                postern_log::warning(format!("open table {name}: {e}"));
                return reply(ProxyStatus::Retry, e);
            }
        };
        match map.lookup(&req.key) {
            Ok(Some(v)) => reply(ProxyStatus::Ok, v),
            Ok(None) => reply(ProxyStatus::NoKey, String::new()),
            Err(e) => {
                postern_log::warning(format!("{name}: lookup of \"{}\": {e}", req.key));
                reply(ProxyStatus::Retry, e.to_string())
            }
        }
    }
}

impl Framed for Proxy {
    fn frame_limit(&self) -> u64 {
        PROXY_FRAME_LIMIT
    }

    fn answer(&self, _ctx: &Context, req: AttrList) -> Option<AttrList> {
        let reply = match ProxyRequest::from_attrs(&req) {
            Ok(req) => self.answer(&req),
            Err(e) => {
                postern_log::warning(format!("bad proxymap request: {e}"));
                ProxyReply {
                    status: ProxyStatus::Bad,
                    value: e.to_string(),
                }
            }
        };
        Some(reply.to_attrs())
    }
}

/// Entry point: run by master as `proxymap` (services `proxymap` and `proxywrite`).
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args = postern_server::skeleton::daemon_args(&args);
    let ctx = postern_server::skeleton::init("proxymap", &args);
    let proxy = Arc::new(Proxy::new(approved_tables(
        &ctx.config.str(p::PROXY_READ_MAPS),
    )));
    finish(
        &ctx,
        framed_server(&ctx, Env::from_master(&ctx), usize::MAX, proxy),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_ipc::proxymap::ProxyOp;

    #[test]
    fn approved_list() {
        let a = approved_tables(
            "proxy:hash:/a, hash:/b proxy:proxy:cdb:/c\tproxy:inline:{x=1, y=2} proxy:nocolon",
        );
        let want: HashSet<String> = ["hash:/a", "cdb:/c", "inline:{x=1, y=2}"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(a, want);
    }

    #[test]
    fn answers() {
        let p = Proxy::new(approved_tables("proxy:inline:{a=1}"));
        let req = |table: &str, key: &str| ProxyRequest {
            op: ProxyOp::Lookup,
            table: table.into(),
            flags: FLAG_FOLD_CASE,
            key: key.into(),
        };
        assert_eq!(p.answer(&req("inline:{a=1}", "A")).value, "1");
        assert_eq!(
            p.answer(&req("proxy:inline:{a=1}", "b")).status,
            ProxyStatus::NoKey
        );
        assert_eq!(
            p.answer(&req("inline:{b=1}", "b")).status,
            ProxyStatus::Deny
        );
        assert_eq!(p.answer(&req("nocolon", "b")).status, ProxyStatus::Bad);
    }

    /// An approved table that cannot be opened answers "retry" (the client defers),
    /// never "not found", and is opened again at the next request once repaired.
    #[test]
    fn broken_table_retries_then_recovers() {
        let src = std::env::temp_dir().join(format!("postern-proxymap-{}", std::process::id()));
        std::fs::remove_file(&src).ok();
        let name = format!("texthash:{}", src.display());
        let p = Proxy::new(approved_tables(&format!("proxy:{name}")));
        let req = ProxyRequest {
            op: ProxyOp::Lookup,
            table: format!("proxy:{name}"),
            flags: FLAG_FOLD_CASE,
            key: "a".into(),
        };
        assert_eq!(p.answer(&req).status, ProxyStatus::Retry);
        std::fs::write(&src, "a 1\n").unwrap();
        let r = p.answer(&req);
        std::fs::remove_file(&src).ok();
        assert_eq!((r.status, r.value.as_str()), (ProxyStatus::Ok, "1"));
    }
}
