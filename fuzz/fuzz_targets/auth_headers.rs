//! Fuzz target `auth_headers`: see `postern_fuzz::auth_headers` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_fuzz::auth_headers(data));
