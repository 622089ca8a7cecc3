//! The single server's table-change exit, in a process of its own (the
//! registry of opened tables is global): a table the service opened changes
//! on disk, the current client is served, then the loop ends with
//! `Exit::TableChanged`.

use postern_config::{Config, parse_main_cf};
use postern_server::service::{self, Env, Exit};
use postern_server::skeleton::Context;
use postern_server::status::{AVAILABLE, BUSY};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

#[test]
fn single_server_exits_after_a_table_changed() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("map");
    std::fs::write(&table, "key old\n").unwrap();
    let spec = format!("texthash:{}", table.display());
    let map = postern_table::open(&spec, &postern_table::OpenOptions::default()).unwrap();
    let path = dir.path().join("s");
    let l = UnixListener::bind(&path).unwrap();
    let (env, handle) = Env::for_test(vec![OwnedFd::from(l)]);
    let t = std::thread::spawn(move || {
        let c = Context::new("test", Config::new(parse_main_cf("").unwrap()));
        let mut serve = |_: &Context, mut s: UnixStream| {
            let v = map.lookup("key").ok().flatten().unwrap_or_default();
            s.write_all(v.as_bytes()).unwrap();
        };
        service::single_server(&c, env, &mut serve)
    });
    let ask = || {
        let mut s = UnixStream::connect(&path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    assert_eq!(ask(), "old");
    // Another mtime: the next request is still answered from the open table.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&table, "key new\n").unwrap();
    assert_eq!(ask(), "old");
    assert_eq!(t.join().unwrap(), Exit::TableChanged);
    assert_eq!(handle.statuses(), [BUSY, AVAILABLE, BUSY, AVAILABLE]);
}
