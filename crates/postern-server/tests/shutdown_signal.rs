//! `Shutdown::from_signals` in a process of its own (the SIGHUP flag is global):
//! the async wait ends at once on SIGHUP, well within the one-second tick, so an
//! event server stops accepting when master reloads, as with tokio's own handler.

use postern_server::service::Shutdown;
use std::time::{Duration, Instant};

#[test]
fn sighup_ends_the_wait_at_once() {
    let shutdown = Shutdown::from_signals();
    assert!(!shutdown.requested());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let waiter = tokio::spawn({
            let s = shutdown.clone();
            async move { s.wait().await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let start = Instant::now();
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGHUP).unwrap();
        tokio::time::timeout(Duration::from_millis(500), waiter)
            .await
            .expect("wait() ended within 500 ms of SIGHUP")
            .unwrap();
        assert!(start.elapsed() < shutdown.tick());
    });
    assert!(shutdown.requested());
}
