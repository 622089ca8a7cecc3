//! The client against a separate process: tests/integration/milterd.py, the
//! scripted raw-protocol milter the integration tests use, over inet and unix
//! sockets.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use postern_milter::{
    Chain, DefaultAction, MacroConfig, Macros, MilterSpec, Modification, Reply, Verdict,
};

/// A milterd.py process, killed on drop.
struct Milterd {
    child: Child,
    endpoint: String,
    record: PathBuf,
}

impl Drop for Milterd {
    fn drop(&mut self) {
        // Test teardown: the process may already be gone.
        let _killed = self.child.kill();
        let _reaped = self.child.wait();
    }
}

fn start(dir: &Path, tag: &str, listen: &str, script: &serde_json::Value) -> Milterd {
    let milterd = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/integration/milterd.py");
    let script_path = dir.join(format!("{tag}.json"));
    std::fs::write(&script_path, script.to_string()).expect("script");
    let record = dir.join(format!("{tag}.record.json"));
    let mut child = Command::new("python3")
        .arg(milterd)
        .args(["--listen", listen, "--script"])
        .arg(&script_path)
        .arg("--record")
        .arg(&record)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 milterd.py");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    BufReader::new(stdout).read_line(&mut line).expect("READY");
    let endpoint = line
        .trim()
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("milterd said {line:?}"))
        .to_string();
    Milterd {
        child,
        endpoint,
        record,
    }
}

fn spec(m: &Milterd) -> MilterSpec {
    MilterSpec {
        name: m.endpoint.clone(),
        command_timeout: Duration::from_secs(2),
        content_timeout: Duration::from_secs(2),
        ..MilterSpec::default()
    }
}

fn record(m: &Milterd) -> serde_json::Value {
    let text = std::fs::read_to_string(&m.record).expect("record");
    serde_json::from_str(&text).expect("record json")
}

fn hdrs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn every_modification_through_a_real_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = serde_json::json!({
        "on": {
            "rcpt": [{"if": "bad@", "do": {"reply": "550-5.7.1 no\r\n550 5.7.1 really"}}],
            "eom": {"modify": [
                {"add_header": ["X-Scanned", "yes"]},
                {"insert_header": [0, "X-Top", "1"]},
                {"change_header": [1, "Subject", "[tag] hi"]},
                {"delete_header": [1, "X-Remove"]},
                {"replace_body": "replaced\r\n"},
                {"add_rcpt": "<added@example.test>"},
                {"add_rcpt_par": ["<par@example.test>", "NOTIFY=NEVER"]},
                {"del_rcpt": "<gone@example.test>"},
                {"change_from": ["<new@example.test>", "BODY=8BITMIME"]}
            ], "then": "accept"}
        }
    });
    let m = start(dir.path(), "mods", "inet:127.0.0.1:0", &script);
    let mut chain = Chain::open(&[spec(&m)], &MacroConfig::postfix_defaults(), "");
    let mut mac = Macros::new();
    mac.insert("i".into(), "4F2A1B2C4D".into());
    mac.insert("j".into(), "mx.example.test".into());
    let ip = "127.0.0.1".parse().ok();
    assert_eq!(
        chain.connect("localhost", ip, 1234, &mac),
        Verdict::Continue
    );
    assert_eq!(chain.helo("client", &mac), Verdict::Continue);
    assert_eq!(chain.mail("s@example.test", &[], &mac), Verdict::Continue);
    let Verdict::Reject(r) = chain.rcpt("bad@example.test", &[], &mac) else {
        panic!("no reject")
    };
    assert_eq!(r.smtp_lines(), ["550-5.7.1 no", "550 5.7.1 really"]);
    assert_eq!(chain.rcpt("ok@example.test", &[], &mac), Verdict::Continue);
    assert_eq!(chain.data(&mac), Verdict::Continue);
    let headers = hdrs(&[("Subject", " hi"), ("X-Remove", " x"), ("From", " a@b")]);
    let out = chain.message(&headers, b"hello\nworld\n", &mac, &mac);
    assert_eq!(out.verdict, Verdict::Accept);
    assert_eq!(
        out.headers,
        hdrs(&[
            ("X-Top", " 1"),
            ("Subject", " [tag] hi"),
            ("From", " a@b"),
            ("X-Scanned", " yes")
        ])
    );
    assert_eq!(out.body, b"replaced\n");
    assert!(out.modifications.contains(&Modification::ChangeFrom {
        sender: "<new@example.test>".into(),
        args: Some("BODY=8BITMIME".into())
    }));
    chain.close();
    let rec = record(&m);
    let session = &rec["sessions"][0];
    assert_eq!(session["negotiate"]["version"], 6);
    let msg = &session["messages"][0];
    assert_eq!(msg["body"], "hello\r\nworld\r\n");
    assert_eq!(msg["headers"][0], serde_json::json!(["Subject", "hi"]));
    let connect = &session["events"][0];
    assert_eq!(connect["event"], "connect");
    assert_eq!(connect["macros"]["j"], "mx.example.test");
    assert_eq!(
        connect["args"],
        serde_json::json!(["localhost", "4", 1234, "127.0.0.1"])
    );
}

#[test]
fn chain_of_unix_and_inet_with_faults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("m.sock");
    let first = start(
        dir.path(),
        "first",
        &format!("unix:{}", sock.display()),
        &serde_json::json!({"on": {"eom": {"modify": [{"add_header": ["X-First", "1"]}]}}}),
    );
    let second = start(
        dir.path(),
        "second",
        "inet:127.0.0.1:0",
        &serde_json::json!({"on": {"mail": [{"if": "garbage", "do": {"garbage": "0000000158"}}]}}),
    );
    let specs = [spec(&first), spec(&second)];
    let mac = Macros::new();
    let mut chain = Chain::open(&specs, &MacroConfig::postfix_defaults(), "");
    assert_eq!(chain.mail("a@b", &[], &mac), Verdict::Continue);
    let out = chain.message(&hdrs(&[("Subject", " s")]), b"b\n", &mac, &mac);
    assert_eq!(out.verdict, Verdict::Continue);
    chain.abort();
    // The second milter now sends garbage: tempfail, for this and later events.
    let tempfail = Verdict::Tempfail(Reply::new(
        451,
        "4.7.1",
        "Service unavailable - try again later",
    ));
    assert_eq!(chain.mail("garbage@b", &[], &mac), tempfail);
    assert_eq!(chain.rcpt("c@d", &[], &mac), tempfail);
    chain.close();
    let rec = record(&second);
    let headers = &rec["sessions"][0]["messages"][0]["headers"];
    assert_eq!(headers[1], serde_json::json!(["X-First", "1"]));
}

#[test]
fn stall_and_default_accept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = start(
        dir.path(),
        "stall",
        "inet:127.0.0.1:0",
        &serde_json::json!({"on": {"helo": {"stall": 3}}}),
    );
    let mut s = spec(&m);
    s.command_timeout = Duration::from_millis(300);
    s.default_action = DefaultAction::Accept;
    let mut chain = Chain::open(&[s], &MacroConfig::postfix_defaults(), "");
    let mac = Macros::new();
    let t = std::time::Instant::now();
    assert_eq!(chain.helo("h", &mac), Verdict::Continue);
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(chain.mail("a@b", &[], &mac), Verdict::Continue);
    chain.close();
}

#[test]
fn truncated_packet_and_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = serde_json::json!({"on": {
        "mail": [{"if": "trunc@", "do": {"truncate": true}}],
        "rcpt": [{"if": "close@", "do": "close"}]
    }});
    let tempfail = Verdict::Tempfail(Reply::new(
        451,
        "4.7.1",
        "Service unavailable - try again later",
    ));
    let m = start(dir.path(), "trunc", "inet:127.0.0.1:0", &script);
    let mac = Macros::new();
    for (mail, rcpt) in [("trunc@x", "r@x"), ("ok@x", "close@x")] {
        let mut chain = Chain::open(&[spec(&m)], &MacroConfig::postfix_defaults(), "");
        let t = std::time::Instant::now();
        let v = chain.mail(mail, &[], &mac);
        let v = if v == Verdict::Continue {
            chain.rcpt(rcpt, &[], &mac)
        } else {
            v
        };
        assert_eq!(v, tempfail, "{mail} {rcpt}");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "closed, not timed out"
        );
        chain.close();
    }
    let rec = record(&m);
    assert_eq!(rec["sessions"][0]["closed"], true);
}
