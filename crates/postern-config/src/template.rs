//! The master.cf that `postern init` writes, in two variants.
//!
//! Both list Postfix's standard services with the same names, types, columns and commands,
//! so that an administrator's knowledge and scripts carry over. Submission (587) and
//! submissions (465) are provided commented out, with the usual hardening overrides.
//!
//! * The instance variant ([`render`], `postern init DIR`): the chroot column is `n`
//!   everywhere (a test or private instance has no jail to populate), and the SMTP listener
//!   is on a configurable endpoint (`--smtp-listen`) so that it can run beside a system MTA.
//! * The system variant ([`render_system`], `postern init --system`, the packaged
//!   `/etc/postern/master.cf`): SMTP on port 25 (`smtp inet`), and chroot `y` on exactly the
//!   services that Debian's stock master.cf runs chrooted ([`JAILED`]).

/// The services (by name; `smtp` is both the listener and the client) that run chrooted
/// in the system variant: those Debian's stock master.cf marks `y`.
pub(crate) const JAILED: &[&str] = &[
    "smtp", "pickup", "cleanup", "tlsmgr", "rewrite", "bounce", "defer", "trace", "verify",
    "flush", "relay", "showq", "error", "retry", "discard", "lmtp", "anvil", "scache",
];

/// See [`crate::default_master_cf`].
pub(crate) fn render(smtp_listen: &str) -> String {
    let listen = if smtp_listen.trim().is_empty() {
        "smtp"
    } else {
        smtp_listen.trim()
    };
    render_with(listen, false)
}

/// See [`crate::system_master_cf`].
pub(crate) fn render_system() -> String {
    render_with("smtp", true)
}

fn render_with(listen: &str, system: bool) -> String {
    let jail = |name: &str| {
        if system && JAILED.contains(&name) {
            "y"
        } else {
            "n"
        }
    };
    let mut out = String::from(HEADER);
    if system {
        out.push_str(SYSTEM_NOTE);
    }
    out.push_str(&row(
        listen,
        "inet",
        "n",
        "-",
        jail("smtp"),
        "-",
        "-",
        "smtpd",
    ));
    // The commented-out submission services are jailed like smtp.
    out.push_str(&SUBMISSION.replace('@', jail("smtp")));
    for (name, kind, private, unpriv, wakeup, maxproc, command) in SERVICES {
        out.push_str(&row(
            name,
            kind,
            private,
            unpriv,
            jail(name),
            wakeup,
            maxproc,
            command,
        ));
        if *name == "relay" {
            out.push_str("        -o syslog_name=postfix/$service_name\n");
        }
    }
    out.push_str(PIPE_EXAMPLES);
    out
}

/// One service line in the aligned column layout `postconf -M` also uses.
#[allow(clippy::too_many_arguments)] // one argument per master.cf column
fn row(
    name: &str,
    kind: &str,
    private: &str,
    unpriv: &str,
    chroot: &str,
    wakeup: &str,
    maxproc: &str,
    cmd: &str,
) -> String {
    format!(
        "{name:<9} {kind:<5} {private:<7} {unpriv:<7} {chroot:<7} {wakeup:<7} {maxproc:<7} {cmd}\n"
    )
}

const HEADER: &str = "\
# Postern master process configuration (master.cf).
#
# One line per service; a line starting with whitespace continues the one
# before. After editing, run \"postern reload\". Columns:
#   service  the socket name (inet: [host:]port; unix: name under private/
#            or public/)
#   type     inet, unix, unix-dgram, fifo or pass
#   private  reachable only by the mail system (\"-\" = y; ignored for inet)
#   unpriv   runs as $mail_owner rather than root (\"-\" = y)
#   chroot   runs chrooted to $queue_directory (\"-\" = n)
#   wakeup   seconds between automatic wake-up requests, \"?\" = only once
#            the service has been used (\"-\" = never)
#   maxproc  process limit (\"-\" = $default_process_limit, 0 = no limit)
#   command  the program and its arguments; -o name=value overrides a
#            main.cf parameter for this service only.
# ==========================================================================
# service type  private unpriv  chroot  wakeup  maxproc command + args
#               (yes)   (yes)   (no)    (never) (100)
# ==========================================================================
";

const SYSTEM_NOTE: &str = "\
# This is the system layout (`postern init --system`): daemons marked \"y\" in the
# chroot column run with $queue_directory as their root directory once they have
# opened what they need; local, virtual, pipe, qmgr and proxymap need the whole
# file system and are not jailed.
# ==========================================================================
";

const SUBMISSION: &str = "\
# Mail submission by authenticated clients, as in Postfix's master.cf
# (chroot column as for smtp). Remove the leading \"#\" to enable.
# Choose one: enable submission for loopback clients only, or for any client.
#127.0.0.1:submission inet n -   @       -       -       smtpd
#submission inet n       -       @       -       -       smtpd
#  -o syslog_name=postfix/submission
#  -o smtpd_tls_security_level=encrypt
#  -o smtpd_sasl_auth_enable=yes
#  -o smtpd_tls_auth_only=yes
#  -o smtpd_reject_unlisted_recipient=no
#     Instead of specifying complex smtpd_<xxx>_restrictions here,
#     specify \"smtpd_<xxx>_restrictions=$mua_<xxx>_restrictions\"
#     here, and specify mua_<xxx>_restrictions in main.cf (where
#     \"<xxx>\" is \"client\", \"helo\", \"sender\", \"relay\", or \"recipient\").
#  -o smtpd_client_restrictions=
#  -o smtpd_helo_restrictions=
#  -o smtpd_sender_restrictions=
#  -o smtpd_relay_restrictions=
#  -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject
#  -o milter_macro_daemon_name=ORIGINATING
# Choose one: enable submissions for loopback clients only, or for any client.
#127.0.0.1:submissions inet n  -       @       -       -       smtpd
#submissions     inet  n       -       @       -       -       smtpd
#  -o syslog_name=postfix/submissions
#  -o smtpd_tls_wrappermode=yes
#  -o smtpd_sasl_auth_enable=yes
#  -o smtpd_reject_unlisted_recipient=no
#     Instead of specifying complex smtpd_<xxx>_restrictions here,
#     specify \"smtpd_<xxx>_restrictions=$mua_<xxx>_restrictions\"
#     here, and specify mua_<xxx>_restrictions in main.cf (where
#     \"<xxx>\" is \"client\", \"helo\", \"sender\", \"relay\", or \"recipient\").
#  -o smtpd_client_restrictions=
#  -o smtpd_helo_restrictions=
#  -o smtpd_sender_restrictions=
#  -o smtpd_relay_restrictions=
#  -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject
#  -o milter_macro_daemon_name=ORIGINATING
";

const PIPE_EXAMPLES: &str = "\
# Delivery to external commands through pipe(8): remove the leading \"#\" to
# enable, and route mail there with transport_maps. Use
# SERVICE_destination_recipient_limit = 1 in main.cf for commands that take
# one ${recipient} (required by the D and O flags). The command runs as
# user= (never root); a non-root instance runs it as its own user.
#maildrop  unix  -       n       n       -       -       pipe
#  flags=DRXhu user=vmail argv=/usr/bin/maildrop -d ${recipient}
#uucp      unix  -       n       n       -       -       pipe
#  flags=Fqhu user=uucp argv=uux -r -n -z -a$sender - $nexthop!rmail ($recipient)
#bsmtp     unix  -       n       n       -       -       pipe
#  flags=Fq. user=bsmtp argv=/usr/lib/bsmtp/bsmtp -t$nexthop -f$sender $recipient
#mailman   unix  -       n       n       -       -       pipe
#  flags=FRX user=list argv=/usr/lib/mailman/bin/postfix-to-mailman.py ${nexthop} ${user}
";

/// (name, type, private, unpriv, wakeup, maxproc, command): every internal service.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

const SERVICES: &[Row] = &[
    ("pickup", "unix", "n", "-", "60", "1", "pickup"),
    ("cleanup", "unix", "n", "-", "-", "0", "cleanup"),
    ("qmgr", "unix", "n", "-", "300", "1", "qmgr"),
    ("tlsmgr", "unix", "-", "-", "1000?", "1", "tlsmgr"),
    ("rewrite", "unix", "-", "-", "-", "-", "trivial-rewrite"),
    ("bounce", "unix", "-", "-", "-", "0", "bounce"),
    ("defer", "unix", "-", "-", "-", "0", "bounce"),
    ("trace", "unix", "-", "-", "-", "0", "bounce"),
    ("verify", "unix", "-", "-", "-", "1", "verify"),
    ("flush", "unix", "n", "-", "1000?", "0", "flush"),
    ("proxymap", "unix", "-", "-", "-", "-", "proxymap"),
    ("proxywrite", "unix", "-", "-", "-", "1", "proxymap"),
    ("smtp", "unix", "-", "-", "-", "-", "smtp"),
    ("relay", "unix", "-", "-", "-", "-", "smtp"),
    ("showq", "unix", "n", "-", "-", "-", "showq"),
    ("error", "unix", "-", "-", "-", "-", "error"),
    ("retry", "unix", "-", "-", "-", "-", "error"),
    ("discard", "unix", "-", "-", "-", "-", "discard"),
    ("local", "unix", "-", "n", "-", "-", "local"),
    ("virtual", "unix", "-", "n", "-", "-", "virtual"),
    ("lmtp", "unix", "-", "-", "-", "-", "lmtp"),
    ("anvil", "unix", "-", "-", "-", "1", "anvil"),
    ("scache", "unix", "-", "-", "-", "1", "scache"),
    ("postlog", "unix-dgram", "n", "-", "-", "1", "postlogd"),
];

#[cfg(test)]
mod tests {
    use crate::{ServiceType, parse_master_cf};

    #[test]
    fn template_parses_and_lists_services() {
        let text = super::render("127.0.0.1:2525");
        let m = parse_master_cf(&text).unwrap();
        let names: Vec<&str> = m.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.len(), 25);
        assert_eq!(names[0], "127.0.0.1:2525");
        assert_eq!(m.services[0].kind, ServiceType::Inet);
        assert_eq!(m.services[0].command, "smtpd");
        assert!(m.services.iter().all(|s| !s.chroot));
        let relay = m.services.iter().find(|s| s.name == "relay").unwrap();
        assert_eq!(
            relay.overrides,
            [(
                "syslog_name".to_string(),
                "postfix/$service_name".to_string()
            )]
        );
        let local = m.services.iter().find(|s| s.name == "local").unwrap();
        assert!(!local.unpriv);
        assert!(text.contains("#  -o smtpd_tls_wrappermode=yes"));
        // Uncommenting the templates yields valid services.
        let open = text
            .replace("#submission", "submission")
            .replace("#submissions", "submissions")
            .replace("#  -o", "  -o");
        let m = parse_master_cf(&open).unwrap();
        assert_eq!(
            m.services.iter().filter(|s| s.command == "smtpd").count(),
            3
        );
        assert!(super::render("").starts_with("#"));
        // The pipe examples parse once uncommented.
        let pipes = text
            .lines()
            .skip_while(|l| !l.starts_with("#maildrop"))
            .map(|l| l.strip_prefix('#').unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let m = parse_master_cf(&pipes).unwrap();
        assert_eq!(m.services.len(), 4);
        assert!(m.services.iter().all(|s| s.command == "pipe" && !s.unpriv));
        let uucp = m.services.iter().find(|s| s.name == "uucp").unwrap();
        assert!(crate::pipe::parse_attrs(&uucp.args).is_ok());
    }

    #[test]
    fn system_variant_jails_debians_services() {
        let text = super::render_system();
        let m = parse_master_cf(&text).unwrap();
        assert_eq!(m.services.len(), 25);
        assert_eq!(m.services[0].name, "smtp");
        assert_eq!(m.services[0].kind, ServiceType::Inet);
        for s in &m.services {
            assert_eq!(
                s.chroot,
                super::JAILED.contains(&s.name.as_str()),
                "{}",
                s.name
            );
        }
        for name in [
            "qmgr",
            "local",
            "virtual",
            "proxymap",
            "proxywrite",
            "postlog",
        ] {
            assert!(m.services.iter().any(|s| s.name == name && !s.chroot));
        }
        // Same services and commands as the instance variant; only the columns differ.
        let inst = parse_master_cf(&super::render("smtp")).unwrap();
        let cmds = |m: &crate::MasterCf| {
            m.services
                .iter()
                .map(|s| (s.name.clone(), s.command.clone(), s.unpriv, s.private))
                .collect::<Vec<_>>()
        };
        assert_eq!(cmds(&m), cmds(&inst));
        assert!(text.contains("#submission inet n       -       y       -       -       smtpd"));
        assert!(!super::render("x:1").contains('@'));
    }
}
