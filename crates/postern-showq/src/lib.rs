//! postern-showq — list the mail queue (Postfix's `showq(8)`).
//!
//! # Synopsis
//! A single server under master (`showq unix n - n - - showq` in master.cf,
//! a public service); `showq -S -c DIR [-j]` prints a listing on standard
//! output without master (postqueue runs that for root and `mail_owner`
//! when the mail system is down, as Postfix's postqueue does).
//!
//! # Description
//! One request per connection, `showq/1`: the client sends
//! `proto=showq/1 format=text|json`; showq reads maildrop, incoming, active,
//! deferred and hold (see [`listing`]) and answers with frames
//! `data=<up to 64 KiB of the listing>` followed by one `status=0`, or with a
//! single `status=1 reason=<text>` when the queue cannot be read. The
//! listing is built completely before the first frame, so a client never
//! sees a partial listing that looks complete; `postqueue -p` relays the text.
//!
//! # Security
//! showq runs as `mail_owner` (unpriv column) and is the only way an
//! ordinary user sees the queue: the queue directories are 0700, and the
//! `public/showq` socket is reached only through the set-gid postqueue
//! (`public/` is 2710 `mail_owner:setgid_group`). `authorized_mailq_users` is
//! enforced by postqueue, before it connects, as in Postfix. Requests are
//! decoded with a small size bound; queue files are parsed with
//! `message_size_limit`'s bound.
//!
//! # Configuration
//! `queue_directory`, `message_size_limit`, `ipc_timeout`, `max_use`,
//! `max_idle`.

pub mod listing;

use postern_config::{Config, p};
use postern_ipc::AttrList;
use postern_queue::Queue;
use postern_server::client;
use postern_server::service::{self, Env};
use postern_server::skeleton::{self, Context};
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

/// The protocol name of a showq request.
pub const PROTO: &str = "showq/1";
/// Largest request frame.
const REQUEST_LIMIT: u64 = 1 << 10;
/// Largest `data` chunk in a reply frame.
pub const CHUNK: usize = 1 << 16;

/// The listing formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `mailq` text.
    Text,
    /// `postqueue -j` JSON lines.
    Json,
}

impl Format {
    /// The request attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
        }
    }
}

/// The request frame for `format`.
pub fn request(format: Format) -> AttrList {
    let mut a = AttrList::new();
    a.push("proto", PROTO).push("format", format.as_str());
    a
}

/// Builds the whole listing (warnings about single files are logged).
pub fn render(cfg: &Config, format: Format) -> Result<String, String> {
    let q = Queue::new(cfg.str(p::QUEUE_DIRECTORY));
    let limit = client::content_frame_limit(cfg);
    let msgs = listing::collect(&q, limit, &mut |w| {
        postern_log::warning(postern_log::plain(&w))
    })
    .map_err(|e| postern_log::plain(&e.to_string()))?;
    Ok(match format {
        Format::Json => msgs.iter().map(listing::format_json).collect(),
        Format::Text => listing::format_text(&msgs, &postern_log::time_zone()),
    })
}

/// Writes a listing (or the failure) as reply frames.
pub fn write_reply(out: &mut impl Write, listing: &Result<String, String>) -> std::io::Result<()> {
    match listing {
        Ok(text) => {
            for chunk in text.as_bytes().chunks(CHUNK) {
                let mut f = AttrList::new();
                f.push("data", chunk);
                client::write_frame(out, &f)?;
            }
            let mut end = AttrList::new();
            end.push("status", "0");
            client::write_frame(out, &end)
        }
        Err(reason) => {
            let mut f = AttrList::new();
            f.push("status", "1").push("reason", reason.as_str());
            client::write_frame(out, &f)
        }
    }
}

/// Decodes a request; `None` for anything but a valid `showq/1` request.
pub fn parse_request(a: &AttrList) -> Option<Format> {
    a.expect_proto(PROTO).ok()?;
    match a.text("format").as_str() {
        "text" | "" => Some(Format::Text),
        "json" => Some(Format::Json),
        _ => None,
    }
}

fn serve(ctx: &Context, mut s: UnixStream) {
    let Some(request) = skeleton::read_request(ctx, &mut s, REQUEST_LIMIT, "showq request") else {
        return;
    };
    let format = parse_request(&request);
    let Some(format) = format else {
        postern_log::warning("showq request: malformed request");
        return;
    };
    let listing = render(&ctx.config, format);
    if let Err(e) = &listing {
        postern_log::warning(e);
    }
    if let Err(e) = write_reply(&mut s, &listing) {
        postern_log::warning(format!("showq reply: {e}"));
    }
}

/// `showq -S -c DIR [-j]`: the listing on standard output, without master.
fn stand_alone(args: &[String]) -> ExitCode {
    let mut dir = None;
    let mut format = Format::Text;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-c" => dir = it.next().map(std::path::PathBuf::from),
            "-j" => format = Format::Json,
            _ => {}
        }
    }
    let dir = postern_server::load::config_dir(dir.as_deref());
    let cfg = match postern_server::load::load(&dir) {
        Ok(l) => l.config,
        Err(e) => {
            postern_log::to_stderr(&format!("showq: fatal: {e}"));
            return ExitCode::from(78);
        }
    };
    postern_log::init("showq", postern_server::load::log_config(&cfg, true));
    match render(&cfg, format) {
        Ok(text) => {
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::from(74),
            }
        }
        Err(e) => {
            postern_log::to_stderr(&format!("showq: fatal: {e}"));
            ExitCode::from(75)
        }
    }
}

/// Daemon entry point.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args = skeleton::daemon_args(&args);
    if args.iter().any(|a| a == "-S") {
        return stand_alone(&args);
    }
    let ctx = skeleton::init("showq", &args);
    let exit = service::single_server(&ctx, Env::from_master(&ctx), &mut serve);
    service::finish(&ctx, exit)
}

#[cfg(test)]
mod tests;
