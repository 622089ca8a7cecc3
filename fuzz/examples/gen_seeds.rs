//! Writes the seed corpora under `fuzz/seeds/<target>/` from Postern's own encoders,
//! so the seeds stay valid when a format changes:
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example gen_seeds
//!
//! Existing files with the same names are overwritten; others are left alone.
use postern_ipc::proto::{
    Action, BounceOp, BounceRequest, CleanupRequest, DeliverRequest, RcptResult, Recipient,
    cleanup_flags, notify,
};
use postern_qfile::{QueueFile, RecipientRecord};
use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), bytes)
}

fn rcpt(addr: &str) -> Recipient {
    Recipient {
        notify: notify::FAILURE | notify::DELAY,
        orcpt: format!("rfc822;{addr}"),
        offset: 123,
        ..Recipient::new(addr)
    }
}

fn ipc(dir: &Path) -> std::io::Result<()> {
    let cleanup = CleanupRequest {
        flags: cleanup_flags::EXTRACT_RCPTS,
        sender: "sender@localhost".into(),
        fullname: "Some One".into(),
        arrival: (1_700_000_000, 123_456),
        recipients: vec![rcpt("user@localhost"), Recipient::new("other@example.org")],
        attrs: vec![
            ("log_ident".into(), "postern/pickup".into()),
            ("origin_uid".into(), "1000".into()),
        ],
        content: b"Subject: seed\nFrom: sender@localhost\n\nbody\n".to_vec(),
    };
    write(dir, "cleanup.bin", &cleanup.to_attrs().encode())?;
    let deliver = DeliverRequest {
        queue_name: "active".into(),
        queue_id: "4XyZ12AbC".into(),
        transport: "local".into(),
        nexthop: "localhost".into(),
        sender: "sender@localhost".into(),
        envid: "ENV1".into(),
        ret: "HDRS".into(),
        arrival: 1_700_000_000.25,
        active_since: 1_700_000_001.5,
        recipients: vec![rcpt("user@localhost")],
    };
    write(dir, "deliver.bin", &deliver.to_attrs().encode())?;
    let bounce = BounceRequest {
        op: BounceOp::AppendDefer,
        queue_name: "active".into(),
        queue_id: "4XyZ12AbC".into(),
        results: vec![RcptResult {
            recipient: rcpt("user@localhost"),
            action: Action::Defer,
            dsn: "4.2.0".into(),
            text: "mailbox temporarily unavailable".into(),
            relay: "local".into(),
        }],
    };
    write(dir, "bounce.bin", &bounce.to_attrs().encode())?;
    let flush = postern_ipc::flush::FlushRequest {
        op: postern_ipc::flush::FlushOp::Add,
        site: "example.org".into(),
        queue_id: "4XyZ12AbC".into(),
    };
    write(dir, "flush.bin", &flush.to_attrs().encode())?;
    write(dir, "empty.bin", b"")
}

fn qfile(dir: &Path) -> std::io::Result<()> {
    let mut q = QueueFile {
        arrival: (1_700_000_000, 42),
        fullname: "Some One".into(),
        sender: "sender@localhost".into(),
        attrs: vec![
            ("log_ident".into(), "postern/cleanup".into()),
            ("rewrite_context".into(), "local".into()),
        ],
        recipients: vec![
            RecipientRecord {
                address: "user@localhost".into(),
                original: "user".into(),
                notify: 8,
                ..Default::default()
            },
            RecipientRecord {
                address: "done@localhost".into(),
                original: "done@localhost".into(),
                done: true,
                ..Default::default()
            },
        ],
        content: b"Received: by localhost\nSubject: seed\n\nbody line\n".to_vec(),
        content_offset: 0,
    };
    write(dir, "two-rcpts.bin", &postern_qfile::encode(&mut q))?;
    let mut bare = QueueFile {
        content: b"\n".to_vec(),
        ..Default::default()
    };
    write(dir, "null-sender.bin", &postern_qfile::encode(&mut bare))
}

const MAIN_CF: &str = "# seed main.cf
compatibility_level = 3.6
myhostname = mx.example.org
mydomain = example.org
myorigin = $mydomain
mydestination = $myhostname, localhost.${mydomain}, localhost
alias_maps =
queue_directory = /tmp/postern/queue
message_size_limit = 10240000
maillog_file = ${queue_directory?/dev/null}
inet_interfaces = loopback-only
smtpd_recipient_restrictions =
    permit_mynetworks,
    reject_unauth_destination
maximal_backoff_time = 4000s
";

fn config(main_dir: &Path, master_dir: &Path) -> std::io::Result<()> {
    write(main_dir, "main.cf", MAIN_CF.as_bytes())?;
    write(
        main_dir,
        "expand.cf",
        b"a = $b$b$b$b\nb = ${c:x}{y}\nc = $a\nd = ${a?{$b}}\n",
    )?;
    write(
        master_dir,
        "default.cf",
        postern_config::default_master_cf("127.0.0.1:2525").as_bytes(),
    )?;
    write(
        master_dir,
        "overrides.cf",
        b"127.0.0.1:2525 inet n - n - - smtpd\n  -o { smtpd_tls_security_level = may }\n  -o syslog_name=postfix/submission\npickup unix n - n 60 1 pickup\nqmgr unix n - n 300? 1 qmgr\n",
    )
}

fn main() -> std::io::Result<()> {
    let seeds = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds");
    ipc(&seeds.join("ipc_frame"))?;
    qfile(&seeds.join("qfile_parse"))?;
    config(&seeds.join("main_cf"), &seeds.join("master_cf"))?;
    println!("seeds written under {}", seeds.display());
    Ok(())
}
