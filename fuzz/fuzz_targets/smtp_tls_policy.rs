//! Fuzz target `smtp_tls_policy`: the smtp client's TLS-policy parsers
//! (`smtp_tls_policy_maps` entries, protocol lists, fingerprints, match
//! lists), MTA-STS TXT records, policy bodies, cache files and HTTP replies,
//! and certificate names (postern_smtp::policy::fuzz). Property: no panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    postern_smtp::policy::fuzz(data);
});
