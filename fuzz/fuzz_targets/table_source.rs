//! Fuzz target `table_source`: a table source as the regexp:, pcre: and cidr: parsers read
//! it (Postfix and strict mode), and as the text of inline:/static:/randmap:/regexp:/cidr:
//! specs; each input line is then looked up. Properties: no panic, bounded results,
//! warnings name a source line.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_table::fuzz::table_source(data));
