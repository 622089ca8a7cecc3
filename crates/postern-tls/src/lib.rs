//! TLS for Postern: Postfix's TLS parameters mapped onto rustls (`ring`
//! provider), for the server (smtpd) and the client (smtp/lmtp).
//!
//! * [`params`]: the parameter vocabulary (`*_tls_protocols`, cipher grades
//!   and OpenSSL cipher strings, `tls_eecdh_*` curves), pure.
//! * [`names`]: protocol, cipher suite and group names as Postfix logs them.
//! * [`server`]: smtpd's policy, certificate/key loading (incl. SNI maps),
//!   session resumption, the handshake and the negotiated session's log line
//!   and Received header clause.
//! * [`anchors`]: trust anchors from CA files/directories, the system store
//!   and PEM files.
//! * [`client`]: the client's rustls configuration, the blocking STARTTLS
//!   stream and its handshake summary.
//!
//! # Security
//! Key material is loaded once and never logged; every logged name comes
//! from our tables or rustls's enums, never from peer text.
//!
//! # Configuration
//! The `smtpd_tls_*` parameters (see [`server`]) and, through the caller,
//! the `smtp_tls_*`/`lmtp_tls_*` ones (see [`client`]).

pub mod anchors;
pub mod client;
pub mod names;
pub mod params;
pub mod server;
