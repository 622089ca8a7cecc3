//! Fuzz target `main_cf`: see `postern_fuzz::main_cf` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_fuzz::main_cf(data));
