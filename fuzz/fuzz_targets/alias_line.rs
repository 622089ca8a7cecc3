//! Fuzz target `alias_line`: aliases(5) source lines as postalias(1) reads them
//! (`postern_table::parse_alias_line`). Property: no panic, and a stored value parses
//! again without panicking.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_table::fuzz::alias_line(data));
