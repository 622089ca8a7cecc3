//! Fuzz target `milter_packet`: see `postern_milter::fuzz::packet` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_milter::fuzz::packet(data));
