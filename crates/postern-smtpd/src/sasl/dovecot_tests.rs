//! Unit tests of the Dovecot protocol parsing (lines as Dovecot 2.3.19 sends them).

use super::*;

#[test]
fn handshake_lines() {
    // As sent by Dovecot 2.3.19.
    assert_eq!(
        parse_handshake("VERSION\t1\t2"),
        Ok(Handshake::Version(1, 2))
    );
    assert_eq!(
        parse_handshake("VERSION\t2\t0"),
        Err(ProtoError::Mismatch(2))
    );
    assert_eq!(parse_handshake("VERSION\tx"), Err(ProtoError::Version));
    assert_eq!(
        parse_handshake("MECH\tCRAM-MD5\tdictionary\tactive"),
        Ok(Handshake::Mech(Mech {
            name: "CRAM-MD5".into(),
            props: props::DICTIONARY | props::ACTIVE
        }))
    );
    assert_eq!(
        parse_handshake("MECH\tPLAIN\tplaintext"),
        Ok(Handshake::Mech(Mech {
            name: "PLAIN".into(),
            props: props::PLAINTEXT
        }))
    );
    assert_eq!(parse_handshake("MECH"), Ok(Handshake::Other));
    assert_eq!(parse_handshake("SPID\t28180"), Ok(Handshake::Spid));
    assert_eq!(parse_handshake("COOKIE\tbf00"), Ok(Handshake::Other));
    assert_eq!(parse_handshake("DONE"), Ok(Handshake::Done));
}

#[test]
fn replies() {
    assert_eq!(
        parse_reply("OK\t1\tuser=joe@example.org"),
        Reply::Ok {
            id: 1,
            user: Some("joe@example.org".into())
        }
    );
    assert_eq!(
        parse_reply("CONT\t3\t"),
        Reply::Cont {
            id: 3,
            data: Some(String::new())
        }
    );
    assert_eq!(
        parse_reply(
            "FAIL\t3\tcode=invalid_base64\treason=Invalid base64 data in continued response"
        ),
        Reply::Fail {
            id: 3,
            user: None,
            reason: Some("Invalid base64 data in continued response".into())
        }
    );
    assert_eq!(
        parse_reply("FAIL\t2\tuser=a\u{1}b"),
        Reply::Fail {
            id: 2,
            user: Some("a?b".into()),
            reason: None
        }
    );
    assert_eq!(parse_reply("FAIL\tx"), Reply::Other);
    assert_eq!(parse_reply(""), Reply::Other);
}

#[test]
fn request_text_and_paths() {
    assert_eq!(
        auth_fields(
            "PLAIN",
            "smtp",
            "127.0.0.1",
            "192.0.2.1",
            true,
            Some("AGEAYg==")
        ),
        "PLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=192.0.2.1\tsecured\tresp=AGEAYg=="
    );
    assert!(is_valid_base64("AGEAYg=="));
    assert!(!is_valid_base64("a\tb"));
    assert_eq!(
        Endpoint::parse("private/auth", "/var/spool/postfix"),
        Endpoint::Unix("/var/spool/postfix/private/auth".into())
    );
    assert_eq!(
        Endpoint::parse("unix:/run/dovecot/auth-client", "/q"),
        Endpoint::Unix("/run/dovecot/auth-client".into())
    );
    assert_eq!(
        Endpoint::parse("inet:127.0.0.1:12345", "/q"),
        Endpoint::Inet("127.0.0.1:12345".into())
    );
}
