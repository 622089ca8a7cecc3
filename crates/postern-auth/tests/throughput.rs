//! Signing and verification throughput (messages/s) for 1 KiB and 100 KiB messages,
//! rsa-sha256 (2048 bits) and ed25519-sha256, in-process: the verifier gets the public key
//! from a pre-filled resolver cache, so no DNS is timed. Ignored by default; run with
//! `cargo test --release -p postern-auth --test throughput -- --ignored --nocapture`.
//!
//! # Security
//!
//! Test code only.
//!
//! # Configuration
//!
//! None.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::{
    AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
};
use postern_auth::{Key, KeyType, Signer, keygen, sign};

/// A TXT cache holding one key record.
struct OneKey(Txt);

impl ResolverCache<Box<str>, Txt> for OneKey {
    fn get<Q>(&self, _: &Q) -> Option<Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        Some(self.0.clone())
    }
    fn remove<Q>(&self, _: &Q) -> Option<Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        None
    }
    fn insert(&self, _: Box<str>, _: Txt, _: Instant) {}
}

fn message(size: usize) -> Vec<u8> {
    let mut m = b"From: a@example.com\r\nTo: b@example.net\r\nSubject: bench\r\n\
Date: Sun, 6 Dec 2026 10:00:00 +0000\r\nMessage-ID: <b@example.com>\r\n\r\n"
        .to_vec();
    while m.len() < size {
        m.extend_from_slice(b"The quick brown fox jumps over the lazy dog 0123456789.\r\n");
    }
    m
}

fn rate(mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < Duration::from_millis(700) {
        f();
        n += 1;
    }
    f64::from(n) / start.elapsed().as_secs_f64()
}

#[test]
#[ignore]
fn throughput() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resolver =
            postern_dns::Resolver::new(&["127.0.0.1:9".parse().unwrap()], Default::default())
                .unwrap();
        let auth = MessageAuthenticator(resolver.hickory().clone());
        for (kind, bits) in [(KeyType::Rsa, 2048), (KeyType::Ed25519, 0)] {
            let pair = keygen(kind, bits).unwrap();
            let dk = DomainKey::parse(pair.txt().as_bytes()).unwrap();
            let cache = OneKey(Txt::DomainKey(Arc::new(dk)));
            let signers = [Signer::new(
                "example.com",
                "s",
                Key::from_pem(pair.private_pem.as_bytes()).unwrap(),
            )];
            for size in [1024, 100 * 1024] {
                let msg = message(size);
                let s = rate(|| {
                    sign(&msg, &signers).unwrap();
                });
                let mut signed = sign(&msg, &signers).unwrap().into_bytes();
                signed.extend_from_slice(&msg);
                let start = Instant::now();
                let mut n = 0u32;
                while start.elapsed() < Duration::from_millis(700) {
                    let parsed = AuthenticatedMessage::parse(&signed).unwrap();
                    let out = auth
                        .verify_dkim(Parameters::new(&parsed).with_txt_cache(&cache))
                        .await;
                    assert_eq!(out[0].result(), &DkimResult::Pass);
                    n += 1;
                }
                let v = f64::from(n) / start.elapsed().as_secs_f64();
                println!("{kind:?} {size} B: sign {s:.0}/s, verify {v:.0}/s");
            }
        }
    });
}
