//! Fuzz target `dkim_keytable`: see `postern_auth::fuzz::keytable` (dkim_key_table values and lines) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_auth::fuzz::keytable(data));
