//! Unit tests of the generated constants, the typed getters and validation at load.

use std::time::Duration;

use crate::*;

fn cfg(text: &str) -> Config {
    Config::new(parse_main_cf(text).unwrap())
}

#[test]
fn every_row_has_a_constant_of_its_kind() {
    assert_eq!(p::ALL.len(), PARAMS.len());
    for (row, (name, kind)) in PARAMS.iter().zip(p::ALL) {
        assert_eq!((row.name, row.kind), (*name, *kind));
    }
    assert_eq!(p::MAX_USE, Int("max_use"));
    assert_eq!(p::MAX_USE.name(), "max_use");
    assert_eq!(p::BIFF, Bool("biff"));
    assert_eq!(p::MESSAGE_SIZE_LIMIT, Size("message_size_limit"));
    assert_eq!(
        p::MAXIMAL_QUEUE_LIFETIME,
        Time("maximal_queue_lifetime", 'd')
    );
    assert_eq!(p::MYDESTINATION, Str("mydestination"));
    assert_eq!(
        p::_2BOUNCE_NOTICE_RECIPIENT.name(),
        "2bounce_notice_recipient"
    );
    assert_eq!(p::SMTP_TLS_CAFILE.name(), "smtp_tls_CAfile");
}

#[test]
fn getters_return_table_defaults() {
    let c = cfg("");
    assert_eq!(c.int(p::MAX_USE), 100);
    assert_eq!(c.time(p::MAX_IDLE), Duration::from_secs(100));
    assert_eq!(
        c.time(p::MAXIMAL_QUEUE_LIFETIME),
        Duration::from_secs(5 * 86400)
    );
    assert_eq!(c.size(p::MESSAGE_SIZE_LIMIT), 10_240_000);
    assert!(c.bool(p::BIFF));
    assert!(!c.bool(p::SOFT_BOUNCE));
    assert_eq!(c.str(p::MAIL_NAME), "Postfix");
    assert_eq!(c.list(p::MYDESTINATION).len(), 3);
    assert!(c.value_errors().is_empty(), "{:?}", c.value_errors());
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn getters_read_main_cf_and_overrides() {
    let c = cfg("max_use = 7\nmax_idle = 2m\nmaximal_queue_lifetime = 2\nbiff = no\n");
    assert_eq!(c.int(p::MAX_USE), 7);
    assert_eq!(c.time(p::MAX_IDLE), Duration::from_secs(120));
    assert_eq!(
        c.time(p::MAXIMAL_QUEUE_LIFETIME),
        Duration::from_secs(2 * 86400)
    );
    assert!(!c.bool(p::BIFF));
    let o = c
        .try_with_overrides(&[("max_use".into(), "9".into())])
        .unwrap();
    assert_eq!(o.int(p::MAX_USE), 9);
}

#[test]
fn unvalidated_bad_value_gives_the_default() {
    let c = cfg("max_use = lots\nbiff = maybe\nmessage_size_limit = -5\n");
    assert_eq!(c.int(p::MAX_USE), 100);
    assert!(c.bool(p::BIFF));
    assert_eq!(c.size(p::MESSAGE_SIZE_LIMIT), 10_240_000);
}

#[test]
fn validation_names_parameter_value_and_line() {
    let c = cfg(
        "# comment\nmax_use = abc\nbiff = maybe\nmax_idle = 10x\nmessage_size_limit = -1\n\
         header_size_limit = 1k\nrelay_destination_concurrency_limit = many\nfoo = bar\n",
    );
    let got: Vec<(Option<usize>, String)> = c
        .value_errors()
        .into_iter()
        .map(|e| (e.line, e.to_string()))
        .collect();
    assert_eq!(
        got,
        [
            (Some(2), "bad numerical configuration: max_use = abc".into()),
            (Some(3), "bad boolean configuration: biff = maybe".into()),
            (
                Some(4),
                "parameter max_idle: bad time value or unit: 10x".into()
            ),
            (
                Some(5),
                "invalid message_size_limit parameter value -1 < 0".into()
            ),
            (
                Some(6),
                "bad numerical configuration: header_size_limit = 1k".into()
            ),
            (
                Some(7),
                "bad numerical configuration: relay_destination_concurrency_limit = many".into()
            ),
        ]
    );
    assert_eq!(
        c.validate().unwrap_err().to_string(),
        "bad numerical configuration: max_use = abc"
    );
}

#[test]
fn validation_of_overrides_and_expanded_defaults() {
    let c = cfg("max_use = 5\nlimit = x\n");
    let e = c
        .try_with_overrides(&[("max_use".into(), "$limit".into())])
        .unwrap_err();
    assert_eq!(
        (e.line, e.to_string()),
        (None, "bad numerical configuration: max_use = x".into())
    );
    let e = c
        .try_with_overrides(&[("soft_bounce".into(), "perhaps".into())])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "bad boolean configuration: soft_bounce = perhaps"
    );
    // An unset row whose default expands through a bad main.cf value.
    let c = cfg("disable_vrfy_command = perhaps\n");
    let errs: Vec<String> = c.value_errors().iter().map(|e| e.to_string()).collect();
    assert_eq!(
        errs,
        [
            "bad boolean configuration: disable_vrfy_command = perhaps",
            "bad boolean configuration: postscreen_disable_vrfy_command = perhaps"
        ]
    );
}

#[test]
fn per_transport_values() {
    let c = cfg(
        "relay_destination_concurrency_limit = 3\nrelay_destination_rate_delay = 2m\n\
         default_destination_concurrency_limit = 7\n",
    );
    assert_eq!(
        c.transport_int("relay", p::DEFAULT_DESTINATION_CONCURRENCY_LIMIT),
        3
    );
    assert_eq!(
        c.transport_int("smtp", p::DEFAULT_DESTINATION_CONCURRENCY_LIMIT),
        7
    );
    assert_eq!(
        c.transport_time("relay", p::DEFAULT_DESTINATION_RATE_DELAY),
        Duration::from_secs(120)
    );
    assert_eq!(
        c.transport_time("smtp", p::DEFAULT_DESTINATION_RATE_DELAY),
        Duration::ZERO
    );
    // A transport with rows of its own: their table defaults.
    assert_eq!(
        c.transport_int("local", p::DEFAULT_DESTINATION_CONCURRENCY_LIMIT),
        2
    );
    assert_eq!(
        c.transport_int("local", p::DEFAULT_DESTINATION_RECIPIENT_LIMIT),
        1
    );
    assert_eq!(
        c.transport_str(
            "relay",
            p::DEFAULT_DESTINATION_CONCURRENCY_POSITIVE_FEEDBACK
        ),
        "1"
    );
    assert!(c.value_errors().is_empty());
    let bad = cfg("relay_time_limit = soon\n");
    assert_eq!(
        bad.validate().unwrap_err().to_string(),
        "parameter relay_time_limit: bad time value or unit: soon"
    );
}
