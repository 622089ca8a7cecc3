//! Fuzz target `ipc_frame`: see `postern_fuzz::ipc_frame` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_fuzz::ipc_frame(data));
