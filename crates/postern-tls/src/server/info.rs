//! What a completed TLS handshake negotiated, in Postfix's words: the
//! `TLS connection established` log line and the Received header clause.
//!
//! Postfix (OpenSSL) names are used throughout: `TLSv1.3`, cipher
//! `TLS_AES_256_GCM_SHA384`, `key-exchange X25519`, `server-signature
//! RSA-PSS (2048 bits)`, `server-digest SHA256`. As in Postfix 3.7, the
//! key-exchange and signature details are given for TLS 1.3 only.
//!
//! # Security
//! Every string here comes from our own tables or from the negotiated
//! parameters, never from client text (the SNI name is logged only when it
//! matched a table key).

use super::keys::KeyDesc;
use crate::names::{cipher_name, group_name, protocol_name};
use rustls::{HandshakeKind, ServerConnection, SignatureScheme};

/// The negotiated parameters of one TLS session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1.2` or `TLSv1.3`.
    pub protocol: &'static str,
    /// OpenSSL's cipher name.
    pub cipher: String,
    /// Cipher strength in bits.
    pub bits: u16,
    /// `X25519`, or `ECDHE` with a curve (TLS 1.3 only).
    pub kex: Option<String>,
    /// `RSA-PSS (2048 bits)` (TLS 1.3 only).
    pub server_sig: Option<String>,
    /// `SHA256` (TLS 1.3, full handshakes only).
    pub server_digest: Option<&'static str>,
    /// The SNI name that selected a table entry.
    pub sni: Option<String>,
    /// The session was resumed.
    pub resumed: bool,
}

fn digest(s: SignatureScheme) -> Option<&'static str> {
    use SignatureScheme as S;
    match s {
        S::RSA_PSS_SHA256 | S::ECDSA_NISTP256_SHA256 | S::RSA_PKCS1_SHA256 => Some("SHA256"),
        S::RSA_PSS_SHA384 | S::ECDSA_NISTP384_SHA384 | S::RSA_PKCS1_SHA384 => Some("SHA384"),
        S::RSA_PSS_SHA512 | S::ECDSA_NISTP521_SHA512 | S::RSA_PKCS1_SHA512 => Some("SHA512"),
        _ => None,
    }
}

impl TlsInfo {
    /// Reads a finished handshake. `key` is the key we chose, `scheme` the
    /// signature scheme it offered for the client's list, `sni` the matched
    /// SNI name.
    pub fn from_connection(
        conn: &ServerConnection,
        key: &KeyDesc,
        scheme: Option<SignatureScheme>,
        sni: Option<String>,
    ) -> TlsInfo {
        let protocol = protocol_name(conn.protocol_version()).unwrap_or("unknown");
        let (cipher, bits) = conn
            .negotiated_cipher_suite()
            .map(cipher_name)
            .unwrap_or_else(|| ("unknown".into(), 0));
        let resumed = conn.handshake_kind() == Some(HandshakeKind::Resumed);
        let tls13 = protocol == "TLSv1.3";
        let kex = conn
            .negotiated_key_exchange_group()
            .filter(|_| tls13)
            .map(|g| match g.name() {
                n @ (rustls::NamedGroup::secp256r1 | rustls::NamedGroup::secp384r1) => {
                    format!("ECDHE ({})", group_name(n))
                }
                n => group_name(n),
            });
        let server_sig = tls13.then(|| match &key.detail {
            Some(d) => format!("{} ({d})", key.name),
            None => key.name.to_string(),
        });
        let server_digest = if tls13 && !resumed {
            scheme.and_then(digest)
        } else {
            None
        };
        TlsInfo {
            protocol,
            cipher,
            bits,
            kex,
            server_sig,
            server_digest,
            sni,
            resumed,
        }
    }

    /// `TLSv1.3 with cipher X (256/256 bits) key-exchange … server-digest …`.
    fn details(&self, sep: &str) -> String {
        let mut s = format!(
            "{} with cipher {} ({}/{} bits)",
            self.protocol, self.cipher, self.bits, self.bits
        );
        let mut first = true;
        let mut add = |part: String, s: &mut String| {
            if first {
                s.push_str(sep);
                first = false;
            } else {
                s.push(' ');
            }
            s.push_str(&part);
        };
        if let Some(k) = &self.kex {
            add(format!("key-exchange {k}"), &mut s);
        }
        if let Some(sig) = &self.server_sig {
            let mut p = format!("server-signature {sig}");
            if let Some(d) = self.server_digest {
                p.push_str(&format!(" server-digest {d}"));
            }
            add(p, &mut s);
        }
        s
    }

    /// Postfix's summary line (`smtpd_tls_loglevel` ≥ 1).
    pub fn summary(&self, client: &str) -> String {
        let to = self
            .sni
            .as_ref()
            .map(|n| format!(" to {n}"))
            .unwrap_or_default();
        format!(
            "Anonymous TLS connection established from {client}{to}: {}",
            self.details(" ")
        )
    }

    /// The Received header lines (without the leading tab), as Postfix 3.7's
    /// `smtpd_tls_received_header = yes` writes them.
    pub fn received_lines(&self) -> Vec<String> {
        let d = self.details("\n ");
        let mut lines: Vec<String> = d.split('\n').map(str::to_string).collect();
        if let Some(first) = lines.first_mut() {
            first.insert_str(0, "(using ");
        }
        if let Some(last) = lines.last_mut() {
            last.push(')');
        }
        lines.push("(No client certificate requested)".into());
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info13() -> TlsInfo {
        TlsInfo {
            protocol: "TLSv1.3",
            cipher: "TLS_AES_256_GCM_SHA384".into(),
            bits: 256,
            kex: Some("X25519".into()),
            server_sig: Some("RSA-PSS (2048 bits)".into()),
            server_digest: Some("SHA256"),
            sni: None,
            resumed: false,
        }
    }

    #[test]
    fn summary_matches_postfix() {
        assert_eq!(
            info13().summary("localhost[127.0.0.1]"),
            "Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.3 with \
             cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 \
             server-signature RSA-PSS (2048 bits) server-digest SHA256"
        );
        let mut i = info13();
        i.sni = Some("mx.example.com".into());
        assert!(
            i.summary("c[1.2.3.4]")
                .contains("from c[1.2.3.4] to mx.example.com: TLSv1.3")
        );
    }

    #[test]
    fn received_matches_postfix() {
        assert_eq!(
            info13().received_lines(),
            [
                "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
                " key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)",
                "(No client certificate requested)",
            ]
        );
        let i = TlsInfo {
            protocol: "TLSv1.2",
            cipher: "ECDHE-RSA-AES128-GCM-SHA256".into(),
            bits: 128,
            kex: None,
            server_sig: None,
            server_digest: None,
            sni: None,
            resumed: false,
        };
        assert_eq!(
            i.received_lines(),
            [
                "(using TLSv1.2 with cipher ECDHE-RSA-AES128-GCM-SHA256 (128/128 bits))",
                "(No client certificate requested)",
            ]
        );
    }
}
