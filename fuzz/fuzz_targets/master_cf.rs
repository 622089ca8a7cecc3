//! Fuzz target `master_cf`: see `postern_fuzz::master_cf` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_fuzz::master_cf(data));
