//! Trust anchors for certificate checks: the CA file, CA directory and the
//! system store (`*_tls_CAfile`, `*_tls_CApath`, `tls_append_default_CA`),
//! and PEM certificate files (`*_tls_trust_anchor_file`, `tafile=`).
//!
//! # Security
//! Files are bounded (64 MiB, 100 000 certificates each, 10 000 files per
//! directory); an unreadable or bad file is a warning for the caller to log,
//! and contributes no anchor (Postfix goes on without it).
//!
//! # Configuration
//! Reads nothing itself: callers pass the parameter values.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, TrustAnchor};
use std::path::Path;

/// The trust anchors of `certs` (certificates that are not valid anchors
/// are skipped).
pub fn anchors(certs: &[CertificateDer<'_>]) -> Vec<TrustAnchor<'static>> {
    certs
        .iter()
        .filter_map(|c| {
            webpki::anchor_from_trusted_cert(c)
                .ok()
                .map(|a| a.to_owned())
        })
        .collect()
}

/// The trust anchors of the certificates in PEM `files`, with the warnings
/// about files that could not be read.
pub fn from_files(files: &[String]) -> (Vec<TrustAnchor<'static>>, Vec<String>) {
    let mut certs = Vec::new();
    let mut warnings = Vec::new();
    for f in files {
        read_pem(Path::new(f), &mut certs, &mut warnings);
    }
    (anchors(&certs), warnings)
}

/// Loads trust anchors: the CA file and directory, plus the system store
/// when both are empty or `append_default`. Problems are returned as
/// warnings (Postfix logs and goes on without the bad file).
pub fn load_roots(
    ca_file: &str,
    ca_path: &str,
    append_default: bool,
) -> (Vec<TrustAnchor<'static>>, Vec<String>) {
    let mut certs: Vec<CertificateDer<'static>> = Vec::new();
    let mut warnings = Vec::new();
    if !ca_file.trim().is_empty() {
        read_pem(Path::new(ca_file.trim()), &mut certs, &mut warnings);
    }
    if !ca_path.trim().is_empty() {
        match std::fs::read_dir(ca_path.trim()) {
            Ok(dir) => {
                let mut paths: Vec<_> = dir.flatten().map(|e| e.path()).collect();
                paths.sort();
                for p in paths.iter().filter(|p| p.is_file()).take(10_000) {
                    read_pem(p, &mut certs, &mut warnings);
                }
            }
            Err(e) => warnings.push(format!("cannot read CApath {}: {e}", ca_path.trim())),
        }
    }
    let none = ca_file.trim().is_empty() && ca_path.trim().is_empty();
    if none || append_default {
        let found = rustls_native_certs::load_native_certs();
        certs.extend(found.certs);
    }
    (anchors(&certs), warnings)
}

/// Reads every certificate of a PEM file (at most 64 MiB).
pub fn read_pem(path: &Path, out: &mut Vec<CertificateDer<'static>>, warnings: &mut Vec<String>) {
    match std::fs::metadata(path) {
        Ok(m) if m.len() > 64 << 20 => {
            warnings.push(format!("{}: file too large", path.display()));
            return;
        }
        Ok(_) => {}
        Err(e) => {
            warnings.push(format!(
                "cannot load certificates from {}: {e}",
                path.display()
            ));
            return;
        }
    }
    match CertificateDer::pem_file_iter(path) {
        Ok(it) => out.extend(it.flatten().take(100_000)),
        Err(e) => warnings.push(format!(
            "cannot load certificates from {}: {e}",
            path.display()
        )),
    }
}
