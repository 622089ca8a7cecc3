//! Fuzz target `pipe_argv`: a pipe(8) service's master.cf attributes and `$macro`
//! templates (`postern_config::pipe::fuzz`), and the RFC 3463 status code that may
//! lead a pipe command's output or an error/retry/discard next hop
//! (`postern_mail::dsn::fuzz`). Properties: no panic; a parsed template written
//! back as text parses to the same template; a split status code is valid.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    postern_config::pipe::fuzz(data);
    postern_mail::dsn::fuzz(data);
});
