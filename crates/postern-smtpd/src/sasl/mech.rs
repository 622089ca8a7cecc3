//! PLAIN (RFC 4616) and LOGIN server mechanisms for the built-in backend:
//! a sans-I/O state machine from base64 client responses to credentials.
//!
//! Texts and behaviour follow Dovecot's, so that the built-in backend answers
//! like `smtpd_sasl_type = dovecot` (checked against Dovecot 2.3.19 behind
//! Postfix 3.7): LOGIN asks `Username:` then `Password:`; PLAIN without an
//! initial response sends an empty challenge; a response that is not base64
//! fails with `Invalid base64 data in initial response` / `… in continued
//! response`; a PLAIN message that does not have three parts, or names an
//! authorization identity other than the login, fails without a reason.
//!
//! # Security
//! Client data is bounded by the caller (`smtpd_sasl_response_limit`). The
//! password is handed to the caller only; it is never logged or kept.
//!
//! # Configuration
//! None.

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};

/// Lenient about padding, strict about the alphabet (as Dovecot's decoder).
pub(crate) const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `Username:` in base64.
pub const LOGIN_USERNAME: &str = "VXNlcm5hbWU6";
/// `Password:` in base64.
pub const LOGIN_PASSWORD: &str = "UGFzc3dvcmQ6";
/// The reason for a response that is not base64 (initial response).
pub const BAD_INITIAL: &str = "Invalid base64 data in initial response";
/// The reason for a response that is not base64 (later responses).
pub const BAD_CONTINUED: &str = "Invalid base64 data in continued response";

/// Where a conversation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// PLAIN sent its empty challenge.
    PlainWait,
    /// LOGIN asked for the user name.
    LoginUser,
    /// LOGIN asked for the password of this user.
    LoginPass(String),
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MechStep {
    /// Send `334 <challenge>` (already base64) and call [`next`] with the answer.
    Challenge(&'static str, State),
    /// The client named a user and a password: check them.
    Credentials {
        /// Login name as sent.
        user: String,
        /// Password bytes.
        password: Vec<u8>,
    },
    /// Authentication failed before any check; `reason` may be empty.
    Fail {
        /// Reason text for the reply (empty: none).
        reason: &'static str,
        /// The login name, when the client gave one.
        user: Option<String>,
    },
}

fn fail(reason: &'static str, user: Option<String>) -> MechStep {
    MechStep::Fail { reason, user }
}

/// Decodes a response; `=` alone is the empty initial response (RFC 4954).
fn decode(resp: &str, initial: bool) -> Option<Vec<u8>> {
    if initial && resp == "=" {
        return Some(Vec::new());
    }
    B64.decode(resp.as_bytes()).ok()
}

/// A login name Dovecot would accept: no control characters, not empty.
fn valid_user(b: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(b).ok()?;
    (!s.is_empty() && !s.chars().any(char::is_control)).then(|| s.to_string())
}

/// Starts `mech` (`PLAIN` or `LOGIN`, upper case) with an optional initial response.
/// Returns `None` for a mechanism this module does not implement.
pub fn start(mech: &str, initial: Option<&str>) -> Option<MechStep> {
    Some(match (mech, initial) {
        ("PLAIN", None) => MechStep::Challenge("", State::PlainWait),
        ("PLAIN", Some(r)) => match decode(r, true) {
            Some(b) => plain(&b),
            None => fail(BAD_INITIAL, None),
        },
        ("LOGIN", None) => MechStep::Challenge(LOGIN_USERNAME, State::LoginUser),
        ("LOGIN", Some(r)) => match decode(r, true) {
            Some(b) => login_user(&b),
            None => fail(BAD_INITIAL, None),
        },
        _ => return None,
    })
}

/// Feeds the client's answer to a challenge.
pub fn next(state: State, resp: &str) -> MechStep {
    let Some(b) = decode(resp, false) else {
        let user = match state {
            State::LoginPass(u) => Some(u),
            _ => None,
        };
        return fail(BAD_CONTINUED, user);
    };
    match state {
        State::PlainWait => plain(&b),
        State::LoginUser => login_user(&b),
        State::LoginPass(user) => MechStep::Credentials { user, password: b },
    }
}

fn login_user(b: &[u8]) -> MechStep {
    match valid_user(b) {
        Some(u) => MechStep::Challenge(LOGIN_PASSWORD, State::LoginPass(u)),
        None => fail("", None),
    }
}

/// `authzid NUL authcid NUL passwd`.
fn plain(b: &[u8]) -> MechStep {
    let mut parts = b.splitn(3, |&c| c == 0);
    let (Some(authz), Some(authc), Some(pass)) = (parts.next(), parts.next(), parts.next()) else {
        return fail("", None);
    };
    let Some(user) = valid_user(authc) else {
        return fail("", None);
    };
    if !authz.is_empty() && authz != authc {
        // No proxy authorization: only the login itself may be named.
        return fail("", Some(user));
    }
    MechStep::Credentials {
        user,
        password: pass.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    fn creds(u: &str, p: &str) -> MechStep {
        MechStep::Credentials {
            user: u.into(),
            password: p.as_bytes().to_vec(),
        }
    }

    #[test]
    fn plain_with_and_without_initial_response() {
        let r = b64(b"\0joe\0secret");
        assert_eq!(start("PLAIN", Some(&r)), Some(creds("joe", "secret")));
        assert_eq!(
            start("PLAIN", None),
            Some(MechStep::Challenge("", State::PlainWait))
        );
        assert_eq!(next(State::PlainWait, &r), creds("joe", "secret"));
        let r = b64(b"joe\0joe\0secret");
        assert_eq!(start("PLAIN", Some(&r)), Some(creds("joe", "secret")));
        let r = b64(b"ann\0joe\0secret");
        assert_eq!(start("PLAIN", Some(&r)), Some(fail("", Some("joe".into()))));
        assert_eq!(start("PLAIN", Some("=")), Some(fail("", None)));
        assert_eq!(start("PLAIN", Some(&b64(b"\0joe"))), Some(fail("", None)));
        assert_eq!(start("PLAIN", Some("!!!!")), Some(fail(BAD_INITIAL, None)));
        assert_eq!(next(State::PlainWait, "!!"), fail(BAD_CONTINUED, None));
        // Padding may be left out.
        assert_eq!(
            start("PLAIN", Some(b64(b"\0joe\0secret").trim_end_matches('='))),
            Some(creds("joe", "secret"))
        );
        assert_eq!(start("CRAM-MD5", None), None);
    }

    #[test]
    fn login_dialogue() {
        let s = start("LOGIN", None);
        assert_eq!(
            s,
            Some(MechStep::Challenge(LOGIN_USERNAME, State::LoginUser))
        );
        let s = next(State::LoginUser, &b64(b"joe"));
        assert_eq!(
            s,
            MechStep::Challenge(LOGIN_PASSWORD, State::LoginPass("joe".into()))
        );
        assert_eq!(
            next(State::LoginPass("joe".into()), &b64(b"pw")),
            creds("joe", "pw")
        );
        assert_eq!(
            start("LOGIN", Some(&b64(b"joe"))),
            Some(MechStep::Challenge(
                LOGIN_PASSWORD,
                State::LoginPass("joe".into())
            ))
        );
        assert_eq!(next(State::LoginUser, ""), fail("", None));
        assert_eq!(next(State::LoginUser, &b64(b"a\nb")), fail("", None));
    }
}
