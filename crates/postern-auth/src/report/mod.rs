//! DMARC aggregate reports (RFC 7489 §7.2) and SMTP TLS reports (RFC 8460): the record
//! store written by smtpd and the SMTP client ([`store`]), and the daily reports made
//! from it.
//!
//! # Security
//!
//! Records are bounded lines in mail_owner's directories; see [`store`].
//!
//! # Configuration
//!
//! `dmarc_reporting`, `dmarc_report_directory`, `tlsrpt_reporting`,
//! `tlsrpt_report_directory`.

pub mod store;

pub use store::{DmarcRecord, TlsRecord, record_dmarc, record_tls};
