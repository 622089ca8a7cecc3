//! Fuzz target `sasl_auth`: smtpd's SASL parsers on arbitrary input — Dovecot
//! auth-protocol handshake and reply lines, the PLAIN/LOGIN mechanism state
//! machine over client responses, and the passwd-file parser of the built-in
//! backend. Properties: no panic; names and reasons taken from the server or
//! client never carry control characters (they reach logs and replies).
#![no_main]

use postern_smtpd::sasl::{builtin, dovecot, mech};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&ctl, input)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(input);
    match ctl % 3 {
        0 => {
            for line in text.split('\n') {
                let _ = dovecot::parse_handshake(line);
                match dovecot::parse_reply(line) {
                    dovecot::Reply::Ok { user, .. } | dovecot::Reply::Fail { user, .. } => {
                        assert!(!user.unwrap_or_default().chars().any(char::is_control));
                    }
                    _ => {}
                }
                let _ = dovecot::is_valid_base64(line);
            }
        }
        1 => {
            let mut lines = text.split("\r\n");
            let name = if ctl & 4 == 0 { "PLAIN" } else { "LOGIN" };
            let initial = if ctl & 8 == 0 { None } else { lines.next() };
            let mut step = mech::start(name, initial);
            for _ in 0..8 {
                match step {
                    Some(mech::MechStep::Challenge(_, state)) => {
                        let Some(resp) = lines.next() else { return };
                        step = Some(mech::next(state, resp));
                    }
                    Some(mech::MechStep::Credentials { user, .. }) => {
                        assert!(!user.is_empty() && !user.chars().any(char::is_control));
                        return;
                    }
                    Some(mech::MechStep::Fail { user, .. }) => {
                        assert!(!user.unwrap_or_default().chars().any(char::is_control));
                        return;
                    }
                    None => return,
                }
            }
        }
        _ => {
            let (users, _warnings) = builtin::parse(&text);
            for u in users.keys() {
                assert!(!u.is_empty() && !u.contains(':'));
            }
        }
    }
});
