//! Server TLS (smtpd): STARTTLS (RFC 3207) and implicit TLS
//! (`smtpd_tls_wrappermode`, port 465), on rustls with the `ring` provider.
//!
//! [`TlsPolicy`] is what the session enforces (offer STARTTLS, refuse mail
//! before it, AUTH only over TLS); [`TlsServer`] holds the rustls
//! configurations, built once per process from the key files. `postern
//! reload` replaces smtpd processes (old ones finish their sessions), so new
//! key files take effect in the new processes without dropping a session.
//!
//! Each handshake first reads the ClientHello, then picks the key: the
//! `tls_server_sni_maps` entry for the SNI name (or a parent domain written
//! `.example.com`), else the default keys; among several keys (RSA and
//! ECDSA) the first that can sign with the client's most preferred
//! signature scheme.
//!
//! Mapping of Postfix's OpenSSL settings (see also `docs/tls.md`):
//! * `smtpd_tls_protocols` / `smtpd_tls_mandatory_protocols` (the latter at
//!   level `encrypt`): TLSv1.2 and TLSv1.3 only; older names are accepted
//!   and are simply never offered.
//! * `smtpd_tls_ciphers` / `smtpd_tls_mandatory_ciphers` select
//!   `tls_<grade>_cipherlist`, which with `smtpd_tls_exclude_ciphers` (and
//!   `smtpd_tls_mandatory_exclude_ciphers` at level `encrypt`) is evaluated
//!   over rustls's TLS 1.2 suites; TLS 1.3 suites are always on (as in
//!   OpenSSL, where cipher strings do not touch TLS 1.3).
//! * `tls_preempt_cipherlist`: server cipher order. `smtpd_tls_eecdh_grade`
//!   and `tls_eecdh_auto_curves`/`_strong_curve`/`_ultra_curve`: groups
//!   (X25519, P-256, P-384; others are skipped).
//! * `smtpd_tls_session_cache_timeout`: lifetime of session tickets and
//!   cached TLS 1.2 sessions (0 turns resumption off). Tickets and the cache
//!   are per process; `smtpd_tls_session_cache_database` is ignored.
//! * Accepted and ignored: `smtpd_tls_dh1024_param_file` (no finite-field
//!   DH in rustls), `smtpd_tls_dcert_file` (no DSA; a warning),
//!   `tls_session_ticket_cipher`, `tls_ssl_options`, `smtpd_tls_CAfile`/
//!   `CApath` (client certificates are not requested).
//!
//! # Security
//! Key material is loaded once and never logged. A handshake is bounded by
//! `smtpd_starttls_timeout`. Missing or bad keys disable TLS with a warning
//! (STARTTLS is then not offered; wrapper-mode sessions are dropped), never
//! a crash loop.
//!
//! # Configuration
//! `smtpd_tls_security_level`, `smtpd_use_tls`, `smtpd_enforce_tls`,
//! `smtpd_tls_wrappermode`, `smtpd_tls_auth_only`, `smtpd_tls_cert_file`,
//! `smtpd_tls_key_file`, `smtpd_tls_eccert_file`, `smtpd_tls_eckey_file`,
//! `smtpd_tls_dcert_file`, `smtpd_tls_chain_files`, `smtpd_tls_protocols`,
//! `smtpd_tls_mandatory_protocols`, `smtpd_tls_ciphers`,
//! `smtpd_tls_mandatory_ciphers`, `smtpd_tls_exclude_ciphers`,
//! `smtpd_tls_mandatory_exclude_ciphers`, `tls_*_cipherlist`,
//! `tls_preempt_cipherlist`, `smtpd_tls_eecdh_grade`, `tls_eecdh_*`,
//! `tls_server_sni_maps`, `smtpd_tls_session_cache_timeout`,
//! `smtpd_tls_received_header`, `smtpd_tls_loglevel`,
//! `smtpd_starttls_timeout`.

mod info;
mod keys;
mod resume;

pub use info::TlsInfo;

use crate::params::{self as ptls, TlsVersion};
use keys::LoadedKey;
use postern_config::Config;
use postern_config::p;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SignatureScheme};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the session enforces.
#[derive(Debug, Clone, Default)]
pub struct TlsPolicy {
    /// Offer STARTTLS (levels `may`, `encrypt`).
    pub use_tls: bool,
    /// Refuse mail until TLS is on (level `encrypt`, wrapper mode).
    pub enforce: bool,
    /// Offer AUTH only over TLS.
    pub auth_only: bool,
    /// `smtpd_tls_wrappermode`.
    pub wrappermode: bool,
    /// `smtpd_tls_received_header`.
    pub received_header: bool,
    /// `smtpd_tls_loglevel`.
    pub loglevel: i64,
    /// `smtpd_starttls_timeout`.
    pub starttls_timeout: Duration,
    /// The master.cf service name, for log lines.
    pub service: String,
}

impl TlsPolicy {
    /// Reads the level parameters with Postfix's precedence: a non-empty
    /// `smtpd_tls_security_level` overrides `smtpd_use_tls` and
    /// `smtpd_enforce_tls`; wrapper mode implies `encrypt`; `encrypt`
    /// implies `smtpd_tls_auth_only`.
    ///
    /// # Errors
    /// An unknown level (Postfix: fatal "Invalid TLS level").
    pub fn from_config(cfg: &Config) -> Result<TlsPolicy, String> {
        let wrappermode = cfg.bool(p::SMTPD_TLS_WRAPPERMODE);
        let mut use_tls = cfg.bool(p::SMTPD_USE_TLS);
        let mut enforce = cfg.bool(p::SMTPD_ENFORCE_TLS);
        let level = cfg.str(p::SMTPD_TLS_SECURITY_LEVEL);
        if !wrappermode && !level.trim().is_empty() {
            match level.trim().to_ascii_lowercase().as_str() {
                "none" => (use_tls, enforce) = (false, false),
                "may" => (use_tls, enforce) = (true, false),
                "encrypt" => (use_tls, enforce) = (true, true),
                "secure" | "verify" | "fingerprint" => {
                    postern_log::warning(format!(
                        "smtpd_tls_security_level: unsupported TLS level \"{level}\", using \"encrypt\""
                    ));
                    (use_tls, enforce) = (true, true);
                }
                _ => return Err(format!("Invalid TLS level \"{level}\"")),
            }
        }
        enforce |= wrappermode;
        use_tls |= enforce;
        Ok(TlsPolicy {
            use_tls,
            enforce,
            auth_only: cfg.bool(p::SMTPD_TLS_AUTH_ONLY) || enforce,
            wrappermode,
            received_header: cfg.bool(p::SMTPD_TLS_RECEIVED_HEADER),
            loglevel: cfg.int(p::SMTPD_TLS_LOGLEVEL),
            starttls_timeout: cfg
                .time(p::SMTPD_STARTTLS_TIMEOUT)
                .max(Duration::from_secs(1)),
            service: "smtp".into(),
        })
    }
}

/// One key with the rustls configuration that serves it.
#[derive(Debug)]
struct Keyed {
    loaded: LoadedKey,
    config: Arc<ServerConfig>,
}

/// Always serves one key (the choice was made from the ClientHello).
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Why a handshake failed, in Postfix's `SSL_accept error` words.
#[derive(Debug)]
pub enum HandshakeError {
    /// `smtpd_starttls_timeout` expired.
    Timeout,
    /// The client went away.
    Lost,
    /// A socket error.
    Io(std::io::Error),
    /// The TLS layer refused (garbage, no common cipher, …).
    Tls(String),
}

/// The process's TLS server state.
#[derive(Debug)]
pub struct TlsServer {
    base: ServerConfig,
    provider: Arc<CryptoProvider>,
    /// TLS 1.3 is enabled.
    tls13: bool,
    defaults: Vec<Keyed>,
    sni: Option<postern_table::BoxMap>,
    /// Loaded SNI entries by table value (keys are loaded on first use).
    sni_cache: Mutex<HashMap<String, Arc<Vec<Keyed>>>>,
}

fn split_list(v: &str) -> Vec<String> {
    v.split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl TlsServer {
    /// Builds the server from the key files and TLS parameters.
    ///
    /// # Errors
    /// Postfix's warning text when TLS cannot be offered (bad protocol list,
    /// no certificate, unreadable or mismatched key): the caller logs it and
    /// runs without TLS.
    pub fn load(cfg: &Config, policy: &TlsPolicy) -> Result<TlsServer, String> {
        let provider = Arc::new(provider(cfg, policy)?);
        let suffix = if policy.enforce { "mandatory_" } else { "" };
        let protocols = ptls::parse_protocols(&cfg.get(&format!("smtpd_tls_{suffix}protocols")))
            .map_err(|e| format!("{e}: disabling TLS support"))?;
        let mut versions = Vec::new();
        if protocols.allows(TlsVersion::Tls13) {
            versions.push(&rustls::version::TLS13);
        }
        if protocols.allows(TlsVersion::Tls12)
            && provider
                .cipher_suites
                .iter()
                .any(|s| s.version() == &rustls::version::TLS12)
        {
            versions.push(&rustls::version::TLS12);
        }
        if versions.is_empty() {
            return Err("no TLS protocol left to offer (TLSv1.2 and TLSv1.3 are excluded, or no TLSv1.2 cipher remains): disabling TLS support".into());
        }
        let mut base = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| format!("TLS configuration: {e}: disabling TLS support"))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resume::NoKey));
        base.ignore_client_order = cfg.bool(p::TLS_PREEMPT_CIPHERLIST);
        resume::configure(
            &mut base,
            cfg.time(p::SMTPD_TLS_SESSION_CACHE_TIMEOUT).as_secs(),
        );
        let loaded = default_keys(cfg, &provider)?;
        let defaults = loaded.into_iter().map(|k| keyed(&base, k)).collect();
        let sni_spec = cfg.str(p::TLS_SERVER_SNI_MAPS);
        let sni = if sni_spec.trim().is_empty() {
            None
        } else {
            Some(
                postern_table::open(sni_spec.trim(), &postern_table::OpenOptions::default())
                    .map_err(|e| format!("tls_server_sni_maps: {e}: disabling TLS support"))?,
            )
        };
        Ok(TlsServer {
            base,
            tls13: versions.contains(&&rustls::version::TLS13),
            provider,
            defaults,
            sni,
            sni_cache: Mutex::new(HashMap::new()),
        })
    }

    /// The keys for an SNI name: `Ok(None)` uses the defaults.
    fn sni_keys(&self, name: &str, client: &str) -> Result<Option<Arc<Vec<Keyed>>>, String> {
        let Some(map) = &self.sni else {
            return Ok(None);
        };
        let name = name.to_ascii_lowercase();
        if name.is_empty()
            || name.len() > 253
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            postern_log::warning(format!("TLS SNI from {client} is invalid: {name}"));
            return Ok(None);
        }
        let mut key: &str = &name;
        let value = loop {
            match map.lookup(key) {
                Ok(Some(v)) => break v,
                Ok(None) => {}
                Err(e) => return Err(format!("{}: {name} map lookup problem: {e}", map.name())),
            }
            match key[1..].find('.') {
                Some(i) => key = &key[i + 1..],
                None => {
                    postern_log::info(format!(
                        "TLS SNI {name} from {client} not matched, using default chain"
                    ));
                    return Ok(None);
                }
            }
        };
        let mut cache = self.sni_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = cache.get(&value) {
            return Ok(Some(k.clone()));
        }
        let loaded = keys::sni_value(&self.provider, &value, &name)?;
        let keyed: Arc<Vec<Keyed>> =
            Arc::new(loaded.into_iter().map(|k| keyed(&self.base, k)).collect());
        cache.insert(value, keyed.clone());
        Ok(Some(keyed))
    }

    /// Whether a handshake with this key can succeed given the client's
    /// cipher suites: any key with TLS 1.3 (OpenSSL lists TLS 1.3 suites only
    /// when it may use TLS 1.3); in TLS 1.2 the suite's authentication
    /// (ECDHE-RSA or ECDHE-ECDSA) must match the key.
    fn can_serve(&self, k: &Keyed, offered: &[u16]) -> bool {
        let ours = |c: &u16| {
            self.provider
                .cipher_suites
                .iter()
                .any(|s| u16::from(s.suite()) == *c)
        };
        let ecdsa = k.loaded.key.key.algorithm() == rustls::SignatureAlgorithm::ECDSA;
        offered
            .iter()
            .filter(|c| ours(c))
            .any(|c| match ptls::cipher_info(*c) {
                Some(i) if i.tls13 => self.tls13,
                Some(i) => i.openssl.contains("-ECDSA-") == ecdsa,
                None => false,
            })
    }

    /// Runs the handshake on `io` within `limit`; `client` is `name[addr]`
    /// for log lines.
    pub async fn accept<IO>(
        &self,
        io: IO,
        limit: Duration,
        client: &str,
    ) -> Result<(tokio_rustls::server::TlsStream<IO>, TlsInfo), HandshakeError>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let deadline = tokio::time::Instant::now() + limit;
        let lazy = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io);
        let start = match tokio::time::timeout_at(deadline, lazy).await {
            Err(_) => return Err(HandshakeError::Timeout),
            Ok(Err(e)) => return Err(classify(e)),
            Ok(Ok(s)) => s,
        };
        let hello = start.client_hello();
        let schemes: Vec<SignatureScheme> = hello.signature_schemes().to_vec();
        let sni_name = hello.server_name().map(str::to_string);
        let sni_keys = match &sni_name {
            Some(n) => self.sni_keys(n, client).map_err(|e| {
                // As Postfix: a table or chain problem fails the handshake.
                postern_log::warning(e);
                HandshakeError::Tls(format!("SNI {n}: no usable certificate chain"))
            })?,
            None => None,
        };
        let (pool, sni) = match &sni_keys {
            Some(k) if !k.is_empty() => (k.as_slice(), sni_name),
            _ => (self.defaults.as_slice(), None),
        };
        let offered: Vec<u16> = hello
            .cipher_suites()
            .iter()
            .map(|c| u16::from(*c))
            .collect();
        let chosen = pick(pool, &schemes, |k| self.can_serve(k, &offered));
        let stream =
            match tokio::time::timeout_at(deadline, start.into_stream(chosen.config.clone())).await
            {
                Err(_) => return Err(HandshakeError::Timeout),
                Ok(Err(e)) => return Err(classify(e)),
                Ok(Ok(s)) => s,
            };
        let conn = stream.get_ref().1;
        let tls13 = conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3);
        let offered: Vec<SignatureScheme> = schemes
            .iter()
            .copied()
            .filter(|s| !tls13 || tls13_scheme(*s))
            .collect();
        let scheme = chosen
            .loaded
            .key
            .key
            .choose_scheme(&offered)
            .map(|s| s.scheme());
        let info = TlsInfo::from_connection(conn, &chosen.loaded.desc, scheme, sni);
        Ok((stream, info))
    }
}

fn classify(e: std::io::Error) -> HandshakeError {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::UnexpectedEof | K::ConnectionReset | K::BrokenPipe => HandshakeError::Lost,
        K::InvalidData => HandshakeError::Tls(e.to_string()),
        _ => HandshakeError::Io(e),
    }
}

fn tls13_scheme(s: SignatureScheme) -> bool {
    use SignatureScheme as S;
    matches!(
        s,
        S::RSA_PSS_SHA256
            | S::RSA_PSS_SHA384
            | S::RSA_PSS_SHA512
            | S::ECDSA_NISTP256_SHA256
            | S::ECDSA_NISTP384_SHA384
            | S::ECDSA_NISTP521_SHA512
            | S::ED25519
            | S::ED448
    )
}

/// The first usable key that can sign with the client's most preferred
/// scheme (OpenSSL's choice between RSA and ECDSA certificates).
fn pick<'k>(
    pool: &'k [Keyed],
    schemes: &[SignatureScheme],
    usable: impl Fn(&Keyed) -> bool,
) -> &'k Keyed {
    for s in schemes {
        if let Some(k) = pool
            .iter()
            .find(|k| usable(k) && k.loaded.key.key.choose_scheme(&[*s]).is_some())
        {
            return k;
        }
    }
    pool.iter().find(|k| usable(k)).unwrap_or(&pool[0])
}

fn keyed(base: &ServerConfig, loaded: LoadedKey) -> Keyed {
    let mut c = base.clone();
    c.cert_resolver = Arc::new(Fixed(loaded.key.clone()));
    Keyed {
        loaded,
        config: Arc::new(c),
    }
}

/// The default keys: `smtpd_tls_chain_files`, else the legacy pairs.
fn default_keys(cfg: &Config, provider: &CryptoProvider) -> Result<Vec<LoadedKey>, String> {
    let chain_files = split_list(&cfg.str(p::SMTPD_TLS_CHAIN_FILES));
    let cert = cfg.str(p::SMTPD_TLS_CERT_FILE);
    let cert = if cert.trim().eq_ignore_ascii_case("none") {
        String::new()
    } else {
        cert
    };
    let eccert = cfg.str(p::SMTPD_TLS_ECCERT_FILE);
    let dcert = cfg.str(p::SMTPD_TLS_DCERT_FILE);
    if !chain_files.is_empty() {
        if !cert.trim().is_empty() || !eccert.trim().is_empty() || !dcert.trim().is_empty() {
            postern_log::warning(
                "Both smtpd_tls_chain_files and one or more of the legacy  smtpd_tls_cert_file, smtpd_tls_eccert_file or smtpd_tls_dcert_file are non-empty; the legacy  parameters will be ignored",
            );
        }
        let keys = keys::load_chain_files(provider, &chain_files)?;
        if keys.is_empty() {
            return Err("No server certs available. TLS won't be enabled".into());
        }
        return Ok(keys);
    }
    if !dcert.trim().is_empty() {
        postern_log::warning(format!(
            "DSA certificates are not supported; ignoring smtpd_tls_dcert_file \"{}\"",
            dcert.trim()
        ));
    }
    let mut out = Vec::new();
    if !cert.trim().is_empty() {
        out.push(keys::load_pair(
            provider,
            "RSA",
            cert.trim(),
            cfg.str(p::SMTPD_TLS_KEY_FILE).trim(),
        )?);
    }
    if !eccert.trim().is_empty() {
        out.push(keys::load_pair(
            provider,
            "ECDSA",
            eccert.trim(),
            cfg.str(p::SMTPD_TLS_ECKEY_FILE).trim(),
        )?);
    }
    if out.is_empty() {
        return Err("No server certs available. TLS won't be enabled".into());
    }
    Ok(out)
}

/// The ring provider narrowed to the configured suites and groups.
fn provider(cfg: &Config, policy: &TlsPolicy) -> Result<CryptoProvider, String> {
    let mut p = rustls::crypto::ring::default_provider();
    let mandatory = if policy.enforce { "mandatory_" } else { "" };
    let grade_param = format!("smtpd_tls_{mandatory}ciphers");
    let grade = ptls::parse_grade(&cfg.get(&grade_param)).unwrap_or_else(|e| {
        postern_log::warning(format!("{grade_param}: {e}; using \"medium\""));
        ptls::Grade::Medium
    });
    let list = cfg.str(grade.cipherlist_param());
    let mut excl = vec![cfg.str(p::SMTPD_TLS_EXCLUDE_CIPHERS)];
    if policy.enforce {
        excl.push(cfg.str(p::SMTPD_TLS_MANDATORY_EXCLUDE_CIPHERS));
    }
    let excl_refs: Vec<&str> = excl.iter().map(String::as_str).collect();
    let tls12: Vec<u16> = ptls::select_ciphers(&list, &excl_refs)
        .iter()
        .map(|c| c.code)
        .collect();
    let all = std::mem::take(&mut p.cipher_suites);
    let mut suites: Vec<_> = all
        .iter()
        .filter(|s| s.version() == &rustls::version::TLS13)
        .copied()
        .collect();
    for code in tls12 {
        if let Some(s) = all.iter().find(|s| u16::from(s.suite()) == code) {
            suites.push(*s);
        }
    }
    p.cipher_suites = suites;
    let curves = match cfg.str(p::SMTPD_TLS_EECDH_GRADE).trim() {
        "strong" => cfg.str(p::TLS_EECDH_STRONG_CURVE),
        "ultra" => cfg.str(p::TLS_EECDH_ULTRA_CURVE),
        _ => cfg.str(p::TLS_EECDH_AUTO_CURVES),
    };
    let groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup> = ptls::curve_groups(&curves)
        .into_iter()
        .map(|g| match g {
            ptls::Group::X25519 => rustls::crypto::ring::kx_group::X25519,
            ptls::Group::P256 => rustls::crypto::ring::kx_group::SECP256R1,
            ptls::Group::P384 => rustls::crypto::ring::kx_group::SECP384R1,
        })
        .collect();
    if !groups.is_empty() {
        p.kx_groups = groups;
    }
    Ok(p)
}
