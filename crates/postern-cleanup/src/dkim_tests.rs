//! Unit tests of cleanup's DKIM signing: which mail, which keys, key rotation, failures.

use super::*;
use postern_auth::{KeyType, keygen};

fn config(dir: &Path, extra: &str) -> Config {
    let text = format!(
        "mynetworks = 192.0.2.0/24\n\
         dkim_signing_table = inline:{{ {{a@example.com = rsa, ed}}, {{example.org = ed}} }}\n\
         dkim_key_table = inline:{{ {{rsa = example.com:krsa:{d}/rsa.pem}}, {{ed = %:ked:{d}/ed.pem}} }}\n\
         {extra}\n",
        d = dir.display()
    );
    Config::new(postern_config::parse_main_cf(&text).unwrap())
}

fn keys(dir: &Path) {
    let rsa = keygen(KeyType::Rsa, 1024).unwrap();
    std::fs::write(dir.join("rsa.pem"), rsa.private_pem).unwrap();
    let ed = keygen(KeyType::Ed25519, 0).unwrap();
    std::fs::write(dir.join("ed.pem"), ed.private_pem).unwrap();
}

fn req(attrs: &[(&str, &str)], flags: u32) -> CleanupRequest {
    CleanupRequest {
        attrs: attrs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        flags,
        ..Default::default()
    }
}

fn qf(from: &str) -> QueueFile {
    QueueFile {
        content: format!("Received: by x\nFrom: Someone <{from}>\nSubject: s\n\nbody\n")
            .into_bytes(),
        ..Default::default()
    }
}

fn signatures(q: &QueueFile) -> Vec<String> {
    postern_mail::header::find_all(&q.content, "DKIM-Signature")
        .map(|f| f.value_string())
        .collect()
}

#[test]
fn signs_listed_senders_of_allowed_clients() {
    let dir = tempfile::tempdir().unwrap();
    keys(dir.path());
    let mut d = Dkim::from_config(&config(dir.path(), ""));
    let mine = req(&[("client_address", "192.0.2.7")], 0);
    let mut q = qf("A@Example.com");
    d.sign(&mine, "ID1", &mut q).unwrap();
    let sigs = signatures(&q);
    assert_eq!(sigs.len(), 2, "{sigs:?}");
    assert!(sigs[0].contains("a=rsa-sha256") && sigs[0].contains("s=krsa"));
    assert!(sigs[1].contains("a=ed25519-sha256") && sigs[1].contains("d=example.com"));
    assert!(q.content.starts_with(b"DKIM-Signature: v=1;") && !q.content.contains(&b'\r'));
    // parent domain match (smtpd_access_maps is in parent_domain_matches_subdomains), `%`
    let mut q = qf("x@sub.example.org");
    d.sign(&mine, "ID2", &mut q).unwrap();
    let sigs = signatures(&q);
    assert!(
        sigs.len() == 1 && sigs[0].contains("d=sub.example.org"),
        "{sigs:?}"
    );
    // not listed, remote client, bounce, no_milters: unsigned
    for (r, from) in [
        (&mine, "b@example.com"),
        (
            &req(&[("client_address", "198.51.100.1")], 0),
            "a@example.com",
        ),
        (
            &req(&[("origin_uid", "0")], cleanup_flags::BOUNCE),
            "a@example.com",
        ),
        (
            &req(
                &[("client_address", "192.0.2.7")],
                cleanup_flags::NO_MILTERS,
            ),
            "a@example.com",
        ),
    ] {
        let mut q = qf(from);
        d.sign(r, "ID3", &mut q).unwrap();
        assert!(signatures(&q).is_empty(), "{from} {:?}", r.attrs);
    }
    // SASL and local submission are signed
    for r in [
        req(&[("sasl_username", "u")], 0),
        req(&[("origin_uid", "1000")], 0),
    ] {
        let mut q = qf("a@example.com");
        d.sign(&r, "ID4", &mut q).unwrap();
        assert_eq!(signatures(&q).len(), 2);
    }
}

#[test]
fn key_rotation_and_failures() {
    let dir = tempfile::tempdir().unwrap();
    keys(dir.path());
    let mut d = Dkim::from_config(&config(dir.path(), "dkim_signing_clients = static:all"));
    let r = req(&[], 0);
    let mut q = qf("z@example.org");
    d.sign(&r, "ID1", &mut q).unwrap();
    assert!(signatures(&q)[0].contains("a=ed25519-sha256"));
    // the key file is replaced by an RSA key: the next message uses it, no restart
    let rsa = keygen(KeyType::Rsa, 1024).unwrap();
    std::fs::write(dir.path().join("ed.pem.new"), rsa.private_pem).unwrap();
    std::fs::rename(dir.path().join("ed.pem.new"), dir.path().join("ed.pem")).unwrap();
    let mut q = qf("z@example.org");
    d.sign(&r, "ID2", &mut q).unwrap();
    assert!(signatures(&q)[0].contains("a=rsa-sha256"));
    // a missing key file defers
    std::fs::remove_file(dir.path().join("ed.pem")).unwrap();
    let f = d.sign(&r, "ID3", &mut qf("z@example.org")).unwrap_err();
    assert_eq!(f.status, CleanupStatus::Defer);
    assert!(f.reason.starts_with("4.7.5 "));
    // a bad canonicalization defers mail to be signed, not other mail
    let mut d = Dkim::from_config(&config(dir.path(), "dkim_canonicalization = loose"));
    let mine = req(&[("client_address", "192.0.2.7")], 0);
    assert!(d.sign(&mine, "ID4", &mut qf("a@example.com")).is_err());
    let remote = req(&[("client_address", "198.51.100.1")], 0);
    assert!(d.sign(&remote, "ID5", &mut qf("a@example.com")).is_ok());
}

#[test]
fn no_table_no_signing() {
    let cfg = Config::new(postern_config::parse_main_cf("").unwrap());
    let mut d = Dkim::from_config(&cfg);
    let mut q = qf("a@example.com");
    d.sign(&req(&[("origin_uid", "0")], 0), "ID", &mut q)
        .unwrap();
    assert!(signatures(&q).is_empty());
    assert_eq!(
        author(b"From: \"x\" <A@B.c>, d@e\n\n"),
        Some("a@b.c".into())
    );
    assert_eq!(author(b"To: a@b\n\n"), None);
}

#[test]
fn preloaded_keys_serve_a_jailed_cleanup() {
    let dir = tempfile::tempdir().unwrap();
    keys(dir.path());
    let mut d = Dkim::from_config(&config(dir.path(), "dkim_signing_clients = static:all"));
    d.preload();
    // out of reach (as outside a chroot jail): the copies read before are used
    std::fs::remove_file(dir.path().join("rsa.pem")).unwrap();
    std::fs::remove_file(dir.path().join("ed.pem")).unwrap();
    let mut q = qf("a@example.com");
    d.sign(&req(&[], 0), "ID1", &mut q).unwrap();
    assert_eq!(signatures(&q).len(), 2);
}
