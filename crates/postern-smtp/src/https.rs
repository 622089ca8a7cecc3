//! A minimal HTTPS GET for MTA-STS policies (RFC 8461 §3.3): HTTP/1.1 over
//! rustls on a blocking socket, one request, `Connection: close`.
//!
//! The certificate must be valid for the host name under WebPKI rules
//! (rustls' webpki verifier with the agent's trust anchors; SNI sent);
//! only status 200 is accepted — redirects are not followed (§3.3); the
//! body (Content-Length, chunked, or up to EOF) may be at most
//! [`crate::sts::MAX_POLICY`] bytes and the whole exchange must finish
//! within the time limit.
//!
//! Security: the reply is untrusted: header block at most 16 KiB, body
//! bounded, every number parsed with limits (fuzzed with the policy parser).
//!
//! Parameters: `smtp_mta_sts_timeout` (through the caller).

use crate::sts::MAX_POLICY;
use rustls::pki_types::{ServerName, TrustAnchor};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The HTTPS port.
pub const PORT: u16 = 443;
const MAX_HEAD: usize = 16 * 1024;

/// Fetches `https://HOST/.well-known/mta-sts.txt`; the body on success.
pub fn get_policy(
    rt: &tokio::runtime::Runtime,
    r: &postern_dns::Resolver,
    host: &str,
    roots: &Arc<Vec<TrustAnchor<'static>>>,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + timeout;
    let ips = match rt.block_on(r.a_aaaa(host)) {
        postern_dns::Lookup::Found(ips) => ips,
        postern_dns::Lookup::NotFound => return Err(format!("{host}: host not found")),
        postern_dns::Lookup::TempFail(why) => return Err(why),
    };
    let store = RootCertStore {
        roots: roots.as_ref().clone(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(store),
        provider.clone(),
    )
    .build()
    .map_err(|e| format!("TLS configuration: {e}"))?;
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_webpki_verifier(verifier)
        .with_no_client_auth();
    let cfg = Arc::new(cfg);
    let mut last = format!("{host}: no address");
    for ip in ips.into_iter().take(4) {
        match fetch_one(&cfg, host, SocketAddr::new(ip, PORT), deadline) {
            Ok(b) => return Ok(b),
            Err(e) => last = format!("{host}[{ip}]: {e}"),
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    Err(last)
}

fn left(deadline: Instant) -> Result<Duration, String> {
    let d = deadline.saturating_duration_since(Instant::now());
    if d.is_zero() {
        Err("timed out".into())
    } else {
        Ok(d)
    }
}

fn fetch_one(
    cfg: &Arc<ClientConfig>,
    host: &str,
    sa: SocketAddr,
    deadline: Instant,
) -> Result<Vec<u8>, String> {
    let sock = TcpStream::connect_timeout(&sa, left(deadline)?).map_err(|e| e.to_string())?;
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let conn = ClientConnection::new(cfg.clone(), name).map_err(|e| e.to_string())?;
    let mut tls = StreamOwned::new(conn, sock);
    let req = format!(
        "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Postern\r\n\
         Accept: text/plain\r\nConnection: close\r\n\r\n"
    );
    tls.sock
        .set_write_timeout(Some(left(deadline)?))
        .map_err(|e| e.to_string())?;
    tls.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    tls.flush().map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let limit = MAX_HEAD + MAX_POLICY + 64;
    loop {
        tls.sock
            .set_read_timeout(Some(left(deadline)?))
            .map_err(|e| e.to_string())?;
        let mut chunk = [0u8; 8192];
        match tls.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            // A peer that closes without close_notify: take what we have.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.to_string()),
        }
        if buf.len() > limit {
            return Err("reply too large".into());
        }
        if let Some(done) = complete(&buf)? {
            return Ok(done);
        }
    }
    parse_reply(&buf, true)
}

/// The body once the reply is complete (by Content-Length or chunked end).
fn complete(buf: &[u8]) -> Result<Option<Vec<u8>>, String> {
    match parse_reply(buf, false) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e == "incomplete" => Ok(None),
        Err(e) => Err(e),
    }
}

/// Parses an HTTP/1.x reply; `eof`: no more bytes will come. The error
/// `incomplete` asks for more data.
pub fn parse_reply(buf: &[u8], eof: bool) -> Result<Vec<u8>, String> {
    let incomplete = || Err("incomplete".to_string());
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD || eof {
            return Err("malformed HTTP reply header".into());
        }
        return incomplete();
    };
    if end > MAX_HEAD {
        return Err("HTTP reply header too long".into());
    }
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    let mut parts = status.splitn(3, ' ');
    let (proto, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !proto.starts_with("HTTP/1.") {
        return Err("not an HTTP/1.x reply".into());
    }
    if code != "200" {
        return Err(format!(
            "HTTP status {}",
            code.chars().take(3).collect::<String>()
        ));
    }
    let mut length = None;
    let mut chunked = false;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("content-length") {
            let n: usize = v.parse().map_err(|_| "bad Content-Length".to_string())?;
            if n > MAX_POLICY {
                return Err("policy too large".into());
            }
            length = Some(n);
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v.eq_ignore_ascii_case("chunked");
        }
    }
    let body = &buf[end + 4..];
    if chunked {
        return dechunk(body, eof);
    }
    match length {
        Some(n) if body.len() >= n => Ok(body[..n].to_vec()),
        Some(_) if eof => Err("truncated HTTP reply".into()),
        Some(_) => incomplete(),
        None if eof => {
            if body.len() > MAX_POLICY {
                Err("policy too large".into())
            } else {
                Ok(body.to_vec())
            }
        }
        None => incomplete(),
    }
}

fn dechunk(mut b: &[u8], eof: bool) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else {
            return if eof {
                Err("truncated chunked body".into())
            } else {
                Err("incomplete".into())
            };
        };
        let size_text = String::from_utf8_lossy(&b[..nl]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        if size_text.len() > 8 {
            return Err("bad chunk size".into());
        }
        let size =
            usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size".to_string())?;
        if size == 0 {
            return Ok(out);
        }
        if out.len() + size > MAX_POLICY {
            return Err("policy too large".into());
        }
        let data = nl + 2;
        let Some(chunk) = b.get(data..data + size) else {
            return if eof {
                Err("truncated chunked body".into())
            } else {
                Err("incomplete".into())
            };
        };
        out.extend_from_slice(chunk);
        b = b.get(data + size + 2..).unwrap_or(&[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        let ok = b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse_reply(ok, false).unwrap(), b"hello");
        assert_eq!(parse_reply(&ok[..30], false).unwrap_err(), "incomplete");
        let eof = b"HTTP/1.1 200 OK\r\n\r\nbody";
        assert_eq!(parse_reply(eof, true).unwrap(), b"body");
        let redirect = b"HTTP/1.1 301 Moved\r\nLocation: https://x/\r\n\r\n";
        assert_eq!(parse_reply(redirect, true).unwrap_err(), "HTTP status 301");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_reply(chunked, false).unwrap(), b"abcde");
        assert!(parse_reply(b"garbage\r\n\r\n", true).is_err());
        let big = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_POLICY + 1
        );
        assert!(parse_reply(big.as_bytes(), false).is_err());
    }
}
