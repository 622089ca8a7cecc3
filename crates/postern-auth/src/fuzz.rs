//! Fuzz bodies for the parsers that are ours in this crate (mail-auth's own parsers are
//! its authors' to fuzz): RFC 7208 record syntax ([`crate::spf::check_record`]), the
//! `dkim_key_table` values and lines ([`crate::keytable`]), the Public Suffix List
//! ([`crate::verify::psl`]) and the header helpers (section bound, header lookup, CRLF,
//! the A-R method filter). The targets in `fuzz/fuzz_targets/` call them; each is cheap
//! (no DNS, no crypto) so that libFuzzer gets many runs per second.
//!
//! # Security
//!
//! The point of these functions: no input panics, and the invariants asserted here hold.
//!
//! # Configuration
//!
//! None.

use crate::keytable::{self, MAX_ENTRY};
use crate::spf::{check_record, is_spf};
use crate::verify::{keep_methods, psl::PublicSuffixList};

/// `spf_record`: the record syntax check; a record it accepts is an SPF record.
pub fn spf_record(data: &[u8]) {
    let txt = String::from_utf8_lossy(data);
    if check_record(&txt).is_ok() {
        assert!(is_spf(&txt), "accepted a non-SPF record: {txt:?}");
    }
}

/// `dkim_keytable`: every line as an OpenDKIM KeyTable line and as a table value; what
/// is accepted names an absolute path and DNS-name characters only.
pub fn keytable(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.lines().chain(std::iter::once(text.as_ref())) {
        let entries = [
            keytable::parse_entry(line).ok(),
            keytable::parse_line(line).ok().flatten().map(|(_, e)| e),
        ];
        for e in entries.into_iter().flatten() {
            assert!(line.len() <= MAX_ENTRY);
            assert!(e.path.is_absolute(), "{e:?}");
            let ok = |s: &str| {
                s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            };
            assert!(e.domain == "%" || ok(&e.domain), "{e:?}");
            assert!(ok(&e.selector) && !e.selector.is_empty(), "{e:?}");
            assert!(
                !e.path.to_string_lossy().contains(char::is_control),
                "{e:?}"
            );
        }
    }
}

/// `auth_headers`: the header helpers, the A-R method filter and the Public Suffix
/// List (the first line is a domain looked up in a list made of the rest).
pub fn headers(data: &[u8]) {
    let fits = crate::check_size(data).is_ok();
    assert!(
        fits || data.len() > crate::MAX_HEADER_SECTION,
        "small input refused"
    );
    let crlf = crate::to_crlf(data);
    assert!(crlf.len() >= data.len());
    assert_eq!(crate::to_crlf(&crlf), crlf, "to_crlf is idempotent");
    let _ = crate::has_header(data, "from");
    let text = String::from_utf8_lossy(data);
    let kept = keep_methods(&text, &["dkim", "arc"]);
    assert!(kept.ends_with("\r\n"), "{kept:?}");
    let (domain, list) = text.split_once('\n').unwrap_or((&text, ""));
    let psl = PublicSuffixList::parse(list);
    // The list lowercases as Unicode does (a U-label); compare the same way.
    let domain = domain.trim().to_lowercase();
    let org = psl.organizational_domain(&domain);
    let _ = psl.public_suffix(&domain);
    assert!(
        org.is_empty() || domain.trim_end_matches('.').ends_with(org.as_str()),
        "{org:?} is not a suffix of {domain:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_like_inputs() {
        spf_record(b"v=spf1 ip4:192.0.2.0/24 include:_spf.example.com -all");
        spf_record(b"v=spf1 redirect=%{d}.x exp=");
        keytable(b"rsa example.com:krsa:/etc/k.pem\n# c\ned %:s:/k\nbad\n");
        headers(b"mail.example.co.uk\nco.uk\nuk\n// comment\n*.ck\n!www.ck\n");
        headers(b"Authentication-Results: mx; dkim=pass;\r\n\tspf=fail\r\n");
    }
}
