//! Fuzz target `qfile_parse`: see `postern_fuzz::qfile_parse` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_fuzz::qfile_parse(data));
