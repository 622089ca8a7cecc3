//! Runs postconf from the command line during development: `cargo run --example postconf -- -n`.
fn main() -> std::process::ExitCode {
    postern_postconf::main(std::env::args_os().collect())
}
