//! DMARC aggregate reports (RFC 7489 §7.2) and SMTP TLS reports (RFC 8460): the record
//! store written by smtpd and the SMTP client ([`store`]), the daily documents
//! ([`dmarc`], [`tlsrpt`]), and the report message: `multipart/mixed` (DMARC, as
//! RFC 7489 §7.2.1.1's example, a text part and the `application/gzip` attachment) or
//! `multipart/report; report-type="tlsrpt"` (RFC 8460 §5.3), with the subject
//! `Report Domain: D Submitter: S Report-ID: <ID>`, handed to Postern's own
//! `sendmail` (postdrop into the maildrop, then pickup and cleanup as any local mail).
//!
//! # Security
//!
//! Records are bounded lines in mail_owner's directories ([`store`]). Report addresses
//! come from DNS: only `mailto:` URIs with a plain address are used, and
//! [`dmarc::destinations`] applies RFC 7489's external-destination verification. The
//! message is built here from escaped text and base64; no header text comes from DNS but
//! the checked addresses and domain names.
//!
//! # Configuration
//!
//! `dmarc_reporting`, `dmarc_report_directory`, `dmarc_report_org_name`,
//! `dmarc_report_email`, `tlsrpt_reporting`, `tlsrpt_report_directory`.

pub mod dmarc;
pub mod send;
pub mod store;
pub mod tlsrpt;

pub use store::{DmarcRecord, TlsRecord, record_dmarc, record_tls};

use base64::Engine;
use flate2::Compression;
use flate2::write::GzEncoder;
use std::io::Write;

/// Who reports: written in every report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// `dmarc_report_org_name`.
    pub org_name: String,
    /// `dmarc_report_email`: the contact and the message's sender.
    pub email: String,
    /// The submitter named in the subject and file name (`myhostname`).
    pub submitter: String,
}

/// `s` with `&`, `<`, `>`, `"` and `'` escaped, and control characters dropped (XML 1.0
/// does not allow them).
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// The address of a `mailto:` report URI (RFC 7489 §6.2: an optional `!size` limit
/// after it), percent-decoded; `None` for other schemes or anything not a plain
/// `local@domain` address.
pub fn mailto(uri: &str) -> Option<String> {
    let uri = uri.trim();
    let rest = uri
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("mailto:"))
        .map(|_| &uri[7..])?;
    let rest = rest.split(['!', '?']).next()?;
    let mut bytes = Vec::with_capacity(rest.len());
    let mut it = rest.bytes();
    while let Some(b) = it.next() {
        if b == b'%' {
            let h = [it.next()?, it.next()?];
            let h = std::str::from_utf8(&h).ok()?;
            bytes.push(u8::from_str_radix(h, 16).ok()?);
        } else {
            bytes.push(b);
        }
    }
    let addr = String::from_utf8(bytes).ok()?;
    let (local, domain) = addr.rsplit_once('@')?;
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && !b"<>()[]\\,;:\"@".contains(&b))
    };
    (plain(local) && plain(domain) && domain.contains('.')).then_some(addr)
}

/// The `!size` limit of a report URI in bytes (RFC 7489 §6.2: digits, then an optional
/// unit `k`, `m`, `g` or `t`, powers of 1024); `None` without one (or unparsable).
pub fn size_limit(uri: &str) -> Option<u64> {
    let (_, size) = uri.trim().split_once('!')?;
    let size = size.trim().to_ascii_lowercase();
    let digits = size.bytes().take_while(u8::is_ascii_digit).count();
    let n: u64 = size.get(..digits)?.parse().ok()?;
    let shift = match &size[digits..] {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

/// `data` gzip-compressed.
pub fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data)?;
    enc.finish()
}

/// What one report message carries.
#[derive(Debug, Clone)]
pub struct Mail<'a> {
    /// The reporter.
    pub meta: &'a Meta,
    /// The policy domain reported on.
    pub domain: &'a str,
    /// The report id.
    pub report_id: &'a str,
    /// The recipients.
    pub to: &'a [String],
    /// Extra header lines (without CRLF), e.g. `TLS-Report-Domain: …`.
    pub extra_headers: Vec<String>,
    /// The top-level `Content-Type:` value.
    pub content_type: String,
    /// The human-readable part.
    pub text: String,
    /// The attachment's media type.
    pub attachment_type: &'a str,
    /// The attachment's file name.
    pub filename: String,
    /// The compressed report.
    pub gz: &'a [u8],
}

/// The report message (LF line ends, as sendmail takes them). The boundary is made from
/// the report id's hash, which cannot occur in base64 text with the `=_` in it.
pub fn message(m: &Mail<'_>) -> Vec<u8> {
    let boundary = format!("=_postern_report_{:016x}", fnv(m.report_id.as_bytes()));
    let mut s = String::new();
    s.push_str(&format!("From: {}\n", m.meta.email));
    s.push_str(&format!("To: {}\n", m.to.join(", ")));
    s.push_str(&format!(
        "Subject: Report Domain: {} Submitter: {} Report-ID: <{}>\n",
        m.domain, m.meta.submitter, m.report_id
    ));
    for h in &m.extra_headers {
        s.push_str(h);
        s.push('\n');
    }
    s.push_str("MIME-Version: 1.0\n");
    s.push_str(&format!(
        "Content-Type: {};\n\tboundary=\"{boundary}\"\n\n",
        m.content_type
    ));
    s.push_str("This is a multi-part message in MIME format.\n\n");
    s.push_str(&format!(
        "--{boundary}\nContent-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: 7bit\n\n{}\n\n",
        m.text
    ));
    s.push_str(&format!(
        "--{boundary}\nContent-Type: {}\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment;\n\tfilename=\"{}\"\n\n",
        m.attachment_type, m.filename
    ));
    let b64 = base64::engine::general_purpose::STANDARD.encode(m.gz);
    for chunk in b64.as_bytes().chunks(76) {
        s.push_str(&String::from_utf8_lossy(chunk));
        s.push('\n');
    }
    s.push_str(&format!("\n--{boundary}--\n"));
    s.into_bytes()
}

/// FNV-1a, 64 bits (a boundary, not security).
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailto_uris() {
        assert_eq!(
            mailto("mailto:rua@example.org").as_deref(),
            Some("rua@example.org")
        );
        assert_eq!(
            mailto(" MAILTO:rua@example.org!10m").as_deref(),
            Some("rua@example.org")
        );
        assert_eq!(
            mailto("mailto:a%2Bb@example.org").as_deref(),
            Some("a+b@example.org")
        );
        assert_eq!(mailto("https://example.org/x"), None);
        assert_eq!(mailto("mailto:a b@example.org"), None);
        assert_eq!(mailto("mailto:a@b@example.org"), None);
        assert_eq!(mailto("mailto:x@localhost"), None);
        assert_eq!(mailto("mailto:a%0A@example.org"), None);
        assert_eq!(mailto("mailto:%"), None);
        assert_eq!(size_limit("mailto:a@example.org!10m"), Some(10 << 20));
        assert_eq!(size_limit("mailto:a@example.org!512"), Some(512));
        assert_eq!(size_limit("mailto:a@example.org!2K"), Some(2048));
        assert_eq!(size_limit("mailto:a@example.org"), None);
        assert_eq!(size_limit("mailto:a@example.org!10x"), None);
        assert_eq!(size_limit("mailto:a@example.org!99999999999999t"), None);
    }

    #[test]
    fn escape_and_gzip() {
        assert_eq!(xml_escape("a<b>&\"'\u{1}c"), "a&lt;b&gt;&amp;&quot;&apos;c");
        let gz = gzip(b"hello").unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    }
}
