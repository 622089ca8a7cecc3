//! postern-smtpd — the SMTP server (Postfix's `smtpd(8)`). Work in progress:
//! the session state machine lands with the SMTP codec.

pub mod settings;
