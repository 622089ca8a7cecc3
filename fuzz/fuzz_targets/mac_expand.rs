//! Fuzz target `mac_expand`: THE `$name` expander (`postern_config::mac_expand`) over
//! arbitrary patterns, in main.cf mode (recursive values, cycles) and local(8) mode (filter).
//! Properties: no panic, bounded output, `$$` escapes round-trip.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    postern_config::mac_expand::fuzz(data);
});
