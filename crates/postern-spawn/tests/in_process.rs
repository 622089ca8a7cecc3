//! The spawn service in one process on `Env::for_test`: a listener in a temporary
//! directory, a status recorder; each connection runs the command with the connection as
//! its standard input and output, one at a time, until `max_use`.

use postern_config::{Config, parse_main_cf};
use postern_server::service::{self, Env, Exit};
use postern_server::skeleton::Context;
use postern_server::status::{AVAILABLE, BUSY};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

fn exchange(path: &std::path::Path, msg: &[u8]) -> Vec<u8> {
    let mut s = UnixStream::connect(path).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(msg).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

#[test]
fn each_connection_runs_the_command_until_max_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy");
    let l = UnixListener::bind(&path).expect("bind");
    let (env, handle) = Env::for_test(vec![OwnedFd::from(l)]);
    // As root the command runs as user= (nobody); mail_owner must be another account.
    let main = parse_main_cf("max_use = 2\nqueue_directory = /\nmail_owner = root\n")
        .expect("main.cf parses");
    let mut ctx = Context::new("spawn", Config::new(main));
    ctx.args = [
        "user=nobody",
        "argv=/bin/sh",
        "-c",
        "echo \"$(id -u) $(pwd)\"; tr a-z A-Z",
    ]
    .map(String::from)
    .to_vec();
    let uid = if postern_sys::privs::is_root() {
        postern_sys::privs::lookup_user("nobody")
            .unwrap()
            .expect("a nobody account")
            .uid
    } else {
        postern_sys::privs::effective_uid()
    };
    let mut svc = postern_spawn::setup(&ctx);
    let t = std::thread::spawn(move || service::single_server(&ctx, env, &mut svc));
    assert_eq!(
        exchange(&path, b"one\n"),
        format!("{uid} /\nONE\n").as_bytes()
    );
    assert_eq!(
        exchange(&path, b"two\n"),
        format!("{uid} /\nTWO\n").as_bytes()
    );
    assert_eq!(t.join().unwrap(), Exit::MaxUse);
    assert_eq!(handle.statuses(), [BUSY, AVAILABLE, BUSY, AVAILABLE]);
}
