//! One delivery request → one command run → one status for all its recipients.
//!
//! Before running anything, in Postfix's order: a service whose argv uses
//! an unknown macro defers (4.3.5); flags `D` and `O` with more than one
//! recipient defer (4.3.5, "requires <service>_destination_recipient_limit
//! = 1"); a message larger than `size=` bounces (5.2.3 message too large);
//! with `D`, a `Delivered-To:` header naming the recipient bounces (5.4.6
//! mail forwarding loop). Then the argv is expanded ([`crate::expand`]), the
//! input built ([`crate::copy`]) and the command run ([`crate::command`]);
//! [`crate::status`] maps how it ended.
//!
//! # Configuration
//! `<service>_time_limit` (else `command_time_limit`), `recipient_delimiter`,
//! `enable_original_recipient`, `export_environment`, `queue_directory`.

use crate::command::{self, Job};
use crate::copy::{self, Envelope};
use crate::expand;
use crate::status::{self, Status};
use postern_config::pipe::{PipeAttrs, Template};
use postern_ipc::proto::{Action, DeliverReply, DeliverRequest};
use postern_mail::header;
use postern_qfile::QueueFile;
use postern_server::agent;
use std::path::PathBuf;
use std::time::Duration;

/// Everything a pipe service needs, read once at start.
#[derive(Debug, Clone)]
pub struct Pipe {
    /// master.cf service name (the `relay=` of log lines).
    pub service: String,
    /// The parsed service attributes.
    pub attrs: PipeAttrs,
    /// The argv templates.
    pub templates: Vec<Template>,
    /// A configuration error that defers every request (logged each time).
    pub config_error: Option<String>,
    /// (uid, gid) for the command when running as root.
    pub ids: Option<(u32, u32)>,
    /// Working directory.
    pub cwd: PathBuf,
    /// The command's environment.
    pub env: Vec<(String, String)>,
    /// Time limit per command.
    pub time_limit: Duration,
    /// `$recipient_delimiter`.
    pub delimiter: String,
    /// `$enable_original_recipient`.
    pub enable_original: bool,
}

fn config_error(req: &DeliverRequest, start: f64, p: &Pipe, why: &str) -> DeliverReply {
    postern_log::warning(why);
    let text = "mail system configuration error";
    agent::same_for_all(req, start, Action::Defer, "4.3.5", text, &p.service)
}

fn from_date() -> String {
    let now = agent::now() as i64;
    let offset = jiff::Timestamp::from_second(now)
        .map_or(0, |t| jiff::tz::TimeZone::system().to_offset(t).seconds());
    postern_mail::date::mbox_from_date(now, offset)
}

fn fixed(req: &DeliverRequest, p: &Pipe, qf: &QueueFile) -> expand::Fixed {
    let mut rest = expand::Fixed::new();
    let attr = |n: &str| qf.attr(n).unwrap_or("").to_string();
    for (macro_name, attr_name) in [
        ("client_address", "client_address"),
        ("client_hostname", "client_name"),
        ("client_port", "client_port"),
        ("client_protocol", "protocol"),
        ("client_helo", "helo_name"),
        ("sasl_method", "sasl_method"),
        ("sasl_username", "sasl_username"),
        ("sasl_sender", "sasl_sender"),
    ] {
        rest.insert(macro_name, attr(attr_name));
    }
    rest.insert("size", qf.content.len().to_string());
    rest.insert("queue_id", req.queue_id.clone());
    rest.insert("envid", req.envid.clone());
    let flags = p.attrs.flags;
    expand::fixed(&req.sender, &p.attrs.null_sender, &req.nexthop, flags, rest)
}

/// Delivers `qf` for `req` through the command.
pub fn deliver(p: &Pipe, req: &DeliverRequest, qf: &QueueFile) -> DeliverReply {
    let start = agent::now();
    let flags = p.attrs.flags;
    if let Some(e) = &p.config_error {
        return config_error(req, start, p, e);
    }
    for (on, letter) in [(flags.delivered_to, 'D'), (flags.original_to, 'O')] {
        if on && req.recipients.len() > 1 {
            let why = format!(
                "pipe flag `{letter}' requires {}_destination_recipient_limit = 1",
                p.service
            );
            return config_error(req, start, p, &why);
        }
    }
    let fail = |action, dsn: &str, text: &str| {
        agent::same_for_all(req, start, action, dsn, text, &p.service)
    };
    if p.attrs.size_limit > 0 && qf.content.len() as u64 > p.attrs.size_limit {
        return fail(Action::Bounce, "5.2.3", "message too large");
    }
    let Some(first) = req.recipients.first() else {
        return DeliverReply {
            results: Vec::new(),
        };
    };
    if flags.delivered_to
        && header::find_all(&qf.content, "delivered-to").any(|f| {
            postern_mail::address::strip_angle(&f.value_string())
                .eq_ignore_ascii_case(&first.address)
        })
    {
        let text = format!("mail forwarding loop for {}", first.address);
        return fail(Action::Bounce, "5.4.6", &text);
    }
    let fixed = fixed(req, p, qf);
    let argv = expand::argv(&p.templates, &fixed, &req.recipients, flags, &p.delimiter);
    let unquoted_sender = if req.sender.is_empty() {
        p.attrs.null_sender.as_str()
    } else {
        req.sender.as_str()
    };
    let date = from_date();
    let env = Envelope {
        sender: unquoted_sender,
        original: &first.original,
        delivered: &first.address,
        enable_original: p.enable_original,
        from_date: &date,
    };
    let input = copy::message(flags, &p.attrs.eol, &env, &qf.content);
    let job = Job {
        argv,
        ids: p.ids,
        cwd: p.cwd.clone(),
        env: p.env.clone(),
        time_limit: p.time_limit,
    };
    let ran = command::run(&job, input);
    let mut st = status::classify(&ran.finish, &ran.output, &job.argv[0], &p.service);
    if let (Some(e), Action::Sent) = (&ran.write_error, st.action) {
        st = Status {
            action: Action::Bounce,
            dsn: "5.3.0".into(),
            text: format!(
                "Command failed: error writing message: {e}: \"{}\"",
                job.argv[0]
            ),
        };
    }
    fail(st.action, &st.dsn, &st.text)
}
