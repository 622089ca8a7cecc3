//! Fuzz target `relay_address`: recipient addresses through trivial-rewrite's class
//! resolution (`postern_table::route::ClassResolver`), which smtpd and qmgr share to
//! decide local versus relay. Properties: no panic; the same answer twice.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_table::fuzz::relay_address(data));
