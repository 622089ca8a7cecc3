//! Fuzz target `tls_params`: Postfix's TLS parameter values (postern_tls::params).
//!
//! The input is split at the first NUL: the first part is a protocol list, a
//! cipher grade, a cipher string and a curve list; the second an exclusion list.
//! Properties: no panic; a cipher selection never repeats a suite and holds only
//! TLS 1.2 suites that exist; curve groups are unique.
#![no_main]

use postern_tls::params::{CIPHERS, curve_groups, parse_grade, parse_protocols, select_ciphers};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_once('\0').unwrap_or((&text, ""));
    let _ = parse_protocols(a);
    let _ = parse_grade(a);
    let chosen = select_ciphers(a, &[b, a]);
    for (i, c) in chosen.iter().enumerate() {
        assert!(!c.tls13 && CIPHERS.contains(*c));
        assert!(chosen[i + 1..].iter().all(|d| d.code != c.code), "suite listed twice");
    }
    let g = curve_groups(a);
    for (i, x) in g.iter().enumerate() {
        assert!(!g[i + 1..].contains(x));
    }
});
