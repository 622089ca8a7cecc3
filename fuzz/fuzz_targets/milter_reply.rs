//! Fuzz target `milter_reply`: see `postern_milter::fuzz::reply` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_milter::fuzz::reply(data));
