//! Fuzz target `spf_record`: see `postern_auth::fuzz::spf_record` (RFC 7208 record syntax) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_auth::fuzz::spf_record(data));
