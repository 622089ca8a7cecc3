//! Fuzz target `postmap_line`: a table source as postmap(1) reads it — logical lines
//! (`postern_table::source_lines`) split into `key whitespace value`
//! (`postern_table::parse_entry`). Properties: no panic; a parsed key and value are
//! non-empty slices of the line, the key has no unquoted whitespace.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_table::fuzz::postmap_line(data));
