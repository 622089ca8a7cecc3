//! Unit tests of [`Config`] and the table.

use crate::*;

fn cfg(text: &str) -> Config {
    Config::new(parse_main_cf(text).unwrap())
}

#[test]
fn layering() {
    let mut c = cfg("myhostname = mx.example\nmyorigin = $mydomain\nfoo = 1\nfoo = 2\n");
    assert_eq!(c.get("foo"), "2");
    assert_eq!(c.raw("myorigin").as_deref(), Some("$mydomain"));
    c.set_default("mydomain", "example");
    c.set_default("myhostname", "ignored.example");
    assert_eq!(c.get("myorigin"), "example");
    assert_eq!(c.get("myhostname"), "mx.example");
    assert!(c.is_set("myhostname") && !c.is_set("mydomain") && !c.is_set("max_use"));
    assert_eq!(c.raw("max_use").as_deref(), Some("100"));
    assert_eq!(c.raw("no_such_param"), None);
    assert_eq!(c.get("no_such_param"), "");
    let o = c.with_overrides(&[
        ("foo".into(), "3".into()),
        ("syslog_name".into(), "postfix/$foo".into()),
    ]);
    assert_eq!(
        (o.get("foo"), o.get("syslog_name")),
        ("3".into(), "postfix/3".into())
    );
    assert!(o.is_set("syslog_name"));
    assert_eq!(c.get("foo"), "2");
    c.set("foo", "4");
    assert_eq!(c.get("foo"), "4");
    assert_eq!(c.main_line("myorigin"), Some(2));
}

#[test]
fn table_defaults_expand() {
    let c = cfg("");
    assert_eq!(c.get("smtpd_timeout"), "300s");
    assert_eq!(c.get_time("smtpd_timeout"), Ok(300));
    assert_eq!(c.get("mynetworks_style"), "subnet");
    let c = cfg("compatibility_level = 3.6");
    assert_eq!(c.get("mynetworks_style"), "host");
    assert_eq!(c.get("relay_domains"), "");
    assert_eq!(c.get_bool("smtputf8_enable"), Ok(true));
    assert_eq!(c.get("smtpd_banner"), "localhost.localdomain ESMTP Postfix");
}

#[test]
fn self_reference_does_not_loop() {
    let c = cfg("a = x $a y\nb = $c\nc = $b\n");
    assert_eq!(c.get("a"), "x $a y");
    assert_eq!(c.get("b"), "$b");
}

#[test]
fn typed_values() {
    let c = cfg(
        "biff = YES\nsoft_bounce = False\nmax_use = 7\nneg = -3\nbad = 3x\n\
                 max_idle = 2m\nmaximal_queue_lifetime = 2\nqueue_run_delay = 1w\nipc_timeout = s\n\
                 minimal_backoff_time = 99999999999999999999d\nmessage_size_limit = 1000\n",
    );
    assert_eq!(c.get_bool("biff"), Ok(true));
    assert_eq!(c.get_bool("soft_bounce"), Ok(false));
    let e = c.get_bool("max_use").unwrap_err();
    assert_eq!((e.kind, e.value.as_str()), ("boolean", "7"));
    assert_eq!(c.get_int("max_use"), Ok(7));
    assert_eq!(c.get_int("neg"), Ok(-3));
    assert!(c.get_int("bad").is_err());
    assert_eq!(c.get_int("message_size_limit"), Ok(1000));
    assert_eq!(
        c.get_int("biff").unwrap_err().to_string(),
        "bad numerical configuration: biff = YES"
    );
    assert_eq!(c.get_time("max_idle"), Ok(120));
    // A bare number takes the table's unit: maximal_queue_lifetime is in days.
    assert_eq!(c.get_time("maximal_queue_lifetime"), Ok(2 * 86400));
    assert_eq!(c.get_time("queue_run_delay"), Ok(604_800));
    assert!(c.get_time("ipc_timeout").is_err());
    assert!(c.get_time("minimal_backoff_time").is_err());
    assert_eq!(c.get_time("bad").unwrap_err().kind, "time");
}

#[test]
fn lists() {
    let c = cfg("mydestination = $myhostname, localhost.$mydomain,,localhost\n  other\nempty =\n");
    assert_eq!(
        c.get_list("mydestination"),
        [
            "localhost.localdomain",
            "localhost.localdomain",
            "localhost",
            "other"
        ]
    );
    assert!(c.get_list("empty").is_empty());
    assert!(c.get_list("nonexistent").is_empty());
    assert_eq!(c.expand("$$ ${mydestination?set}"), "$ set");
}

#[test]
fn unused_params() {
    let main = "myhostname = x\nmua_client_restrictions = permit\nlonely = 1\nused = 2\n\
                smtpd_client_restrictions = $used\nrelay_destination_concurrency_limit = 5\n\
                smtpd_restriction_classes = cls\ncls = reject\nviaopt = 1\nsmtp_nonsense = 1\n";
    let c = cfg(main);
    let master = parse_master_cf(
        "relay unix - - n - - smtp\nsubmission inet n - n - - smtpd \
        -o smtpd_client_restrictions=$mua_client_restrictions -o viaopt=2\n",
    )
    .unwrap();
    let got = c.unused_main_params(Some(&master));
    assert_eq!(
        got,
        [
            ("lonely".into(), "1".into(), 3),
            ("smtp_nonsense".into(), "1".into(), 10)
        ]
    );
    let got: Vec<String> = c
        .unused_main_params(None)
        .into_iter()
        .map(|u| u.0)
        .collect();
    assert_eq!(
        got,
        [
            "mua_client_restrictions",
            "lonely",
            "relay_destination_concurrency_limit",
            "viaopt",
            "smtp_nonsense"
        ]
    );
}

#[test]
fn table_is_sorted_unique_and_complete() {
    assert!(PARAMS.len() >= 300, "{}", PARAMS.len());
    for w in PARAMS.windows(2) {
        assert!(w[0].name < w[1].name, "{} !< {}", w[0].name, w[1].name);
    }
    for p in PARAMS {
        assert!(valid_param_name(p.name), "{}", p.name);
        assert!(!p.doc.is_empty(), "{}", p.name);
        assert_eq!(param(p.name).map(|q| q.name), Some(p.name));
    }
    assert!(param("dns_servers").is_some());
    assert!(param("postern_fsync").is_none());
    let required = "config_directory queue_directory command_directory daemon_directory data_directory \
        mail_owner setgid_group default_privs myhostname mydomain myorigin mydestination mynetworks \
        mynetworks_style inet_interfaces inet_protocols relay_domains relayhost local_recipient_maps \
        alias_maps alias_database mail_spool_directory home_mailbox mailbox_command mailbox_size_limit \
        message_size_limit header_size_limit line_length_limit hopcount_limit recipient_delimiter \
        append_at_myorigin append_dot_mydomain masquerade_domains always_add_missing_headers always_bcc \
        default_process_limit max_use max_idle ipc_timeout ipc_idle service_throttle_time \
        process_id_directory minimal_backoff_time maximal_backoff_time maximal_queue_lifetime \
        bounce_queue_lifetime queue_run_delay delay_warning_time qmgr_message_active_limit \
        qmgr_message_recipient_limit default_destination_concurrency_limit initial_destination_concurrency \
        local_destination_concurrency_limit default_destination_recipient_limit \
        local_destination_recipient_limit default_transport local_transport relay_transport \
        virtual_transport transport_maps syslog_name syslog_facility maillog_file maillog_file_prefixes \
        notify_classes bounce_notice_recipient 2bounce_notice_recipient double_bounce_sender mail_name \
        mail_version smtpd_banner empty_address_recipient bounce_size_limit prepend_delivered_header \
        enable_original_recipient enable_long_queue_ids soft_bounce fork_attempts fork_delay in_flow_delay \
        trigger_timeout compatibility_level biff strict_rfc821_envelopes allow_mail_to_commands \
        allow_mail_to_files forward_path mailbox_delivery_lock deliver_lock_attempts deliver_lock_delay \
        stale_lock_time sendmail_path newaliases_path mailq_path manpage_directory html_directory \
        readme_directory sample_directory shlib_directory meta_directory import_environment \
        export_environment delay_logging_resolution_limit backwards_bounce_logfile_compatibility \
        hash_queue_names hash_queue_depth message_reject_characters smtputf8_enable";
    let missing: Vec<&str> = required
        .split_whitespace()
        .filter(|n| param(n).is_none())
        .collect();
    assert!(missing.is_empty(), "missing: {missing:?}");
}

#[test]
fn kinds_of_key_params() {
    let k = |n: &str| param(n).unwrap().kind;
    assert_eq!(k("biff"), ParamKind::Bool);
    assert_eq!(k("max_use"), ParamKind::Int);
    assert_eq!(k("message_size_limit"), ParamKind::Size);
    assert_eq!(k("maximal_queue_lifetime"), ParamKind::Time('d'));
    assert_eq!(k("max_idle"), ParamKind::Time('s'));
    assert_eq!(k("smtpd_timeout"), ParamKind::Time('s'));
    assert!(param("myhostname").unwrap().host_dependent);
    assert!(!param("max_use").unwrap().host_dependent);
}

/// Strictness (hickory-style): every typed parameter rejects a spurious value, and every
/// table default of a typed parameter converts.
#[test]
fn strictness() {
    let base = cfg("compatibility_level = 3.6");
    for p in PARAMS {
        let ok = match p.kind {
            ParamKind::Str => continue,
            ParamKind::Bool => base.get_bool(p.name).is_ok(),
            ParamKind::Int | ParamKind::Size => base.get_int(p.name).is_ok(),
            ParamKind::Time(_) => base.get_time(p.name).is_ok(),
        };
        assert!(
            ok,
            "default of {} does not convert: {:?}",
            p.name,
            base.get(p.name)
        );
        let mut bad = base.clone();
        bad.set(p.name, "spurious");
        let rejected = match p.kind {
            ParamKind::Bool => bad.get_bool(p.name).is_err(),
            ParamKind::Time(_) => bad.get_time(p.name).is_err(),
            _ => bad.get_int(p.name).is_err(),
        };
        assert!(rejected, "{} accepted a spurious value", p.name);
    }
}

#[test]
fn unused_master_overrides() {
    let c = cfg("mine = 1\n");
    let m = parse_master_cf(
        "relay unix - - n - - smtp -o zork=1 -o relay_time_limit=5 -o mine=2 \
        -o syslog_name=$other -o other=x\n",
    )
    .unwrap();
    assert_eq!(
        c.unused_master_params(&m),
        [("zork".to_string(), "1".to_string(), 1)]
    );
}

#[test]
fn non_ascii_after_parameter_name_does_not_panic() {
    // Found by fuzz/fuzz_targets/main_cf.rs: a multi-byte character right after `${name`.
    let main = crate::parse_main_cf("a = ${bé}\nb = ${b\u{fffd}x}\nc = $a $b\n").unwrap();
    let cfg = crate::Config::new(main);
    let _value = cfg.get("c");
}

#[test]
fn list_keeps_braced_groups() {
    let main =
        crate::parse_main_cf("t = hash:/a, inline:{ a = b, { c = d e } } static:{x y},cidr:/z\n")
            .unwrap();
    let cfg = crate::Config::new(main);
    assert_eq!(
        cfg.get_list("t"),
        [
            "hash:/a",
            "inline:{ a = b, { c = d e } }",
            "static:{x y}",
            "cidr:/z"
        ]
    );
}
