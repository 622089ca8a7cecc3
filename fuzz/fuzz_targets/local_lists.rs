//! Fuzz target `local_lists`: the local delivery agent's parsers of user-written
//! input: address lists of aliases, `.forward` and `:include:` files
//! (`postern_local::alias::tokens`) and `$name` expansion of `forward_path`-style
//! patterns (`postern_local::expand::expand`). Properties: no panic, bounded output.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    postern_local::alias::fuzz(data);
    postern_local::expand::fuzz(data);
});
