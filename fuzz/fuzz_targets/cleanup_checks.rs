//! Fuzz target `cleanup_checks`: cleanup's parsers of network input and table
//! results: header_checks action parsing, address rewriting inside header values,
//! the MIME body pass with header/body checks, envelope address rewriting
//! (`postern_cleanup::fuzz`). Property: no panic; an identity rewrite of a header
//! value changes nothing.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_cleanup::fuzz(data));
