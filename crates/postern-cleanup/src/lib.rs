//! postern-cleanup — canonicalize and enqueue (Postfix's `cleanup(8)`).
//!
//! Every message enters the queue through cleanup: pickup (local
//! submissions), smtpd and qmqpd (network), and bounce (notices) each send one
//! `cleanup/1` request. cleanup checks limits, fixes the header (see
//! [`process`]), writes ONE queue file into `incoming/` (or `hold/`) with the
//! durable sequence of `postern-queue-admin` (file fsync, then directory
//! fsync), and only then answers with the queue ID. Finally it wakes qmgr.
//!
//! When the submitter has no client to tell (local submission, flag
//! `BOUNCE_ON_REJECT`), every permanent refusal (message too big, no
//! recipients, a content check's REJECT, …) is queued anyway, header only,
//! marked with a `cleanup_reject` attribute:
//! qmgr then bounces it to the sender with that reason, as Postfix's cleanup
//! does for pickup: nothing `sendmail` acknowledged is lost. The header
//! itself is never a reason to refuse: `header_size_limit` truncates each
//! header ([`normalise`]).
//!
//! Address rewriting (canonical maps, masquerading, virtual aliases,
//! automatic BCC: [`envelope`], [`hdr_addr`]) and content checks
//! ([`checks`], [`mime`]) happen while the queue file is built; their tables
//! are opened once per process ([`tables`]). A content check may reject the
//! message (the client gets `550 5.7.1 …`), defer it, discard it (accepted,
//! nothing queued), put it on hold (the file goes to `hold/`), redirect it or
//! give it a content filter (an attribute `filter=transport:nexthop` that qmgr
//! honours).
//!
//! Milters ([`milter`]): the content stage of smtpd's milters runs on the built
//! file before it is written (smtpd is asked on the request's connection), and
//! `non_smtpd_milters` run here for other mail; their edits and verdicts are
//! applied before the file is written.
//!
//! # Security
//! Requests are size-bounded frames decoded strictly; header and body text
//! are used only as lookup keys. A write error or a table failure removes the
//! partial file and answers "defer": nothing is acknowledged that is not
//! durable, and nothing is bounced because a table could not answer.
//!
//! # Configuration
//! `myhostname`, `myorigin`, `mail_name`, `message_size_limit`,
//! `header_size_limit`, `hopcount_limit`, `duplicate_filter_limit`,
//! `queue_directory`, `ipc_timeout`, and the rewriting and checking
//! parameters listed in [`tables`].

pub mod added;
pub mod addr;
pub mod arc;
pub mod checks;
pub mod dkim;
pub mod envelope;
pub mod flow;
pub mod hdr_addr;
pub mod maps;
pub mod masquerade;
pub mod milter;
pub mod mime;
pub mod normalise;
pub mod process;
pub mod tables;
pub mod virtual_alias;

use postern_config::p;
use postern_ipc::proto::{CleanupReply, CleanupRequest, CleanupStatus, cleanup_flags, trigger};
use postern_queue::Queue;
use postern_server::client;
use postern_server::service::{self, Env, Service};
use postern_server::skeleton::{self, Context};
use process::{Now, Refusal, Settings};
use std::ffi::OsString;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use tables::Tables;

/// Fuzz entry point: every parser of untrusted input in cleanup (header
/// values, table actions, MIME structure, address forms). Never panics.
pub fn fuzz(data: &[u8]) {
    checks::fuzz(data);
    hdr_addr::fuzz(data);
    mime::fuzz(data);
    normalise::fuzz(data);
    let text = String::from_utf8_lossy(data);
    let ctx = addr::Context {
        origin: "example.org",
        domain: "example.org",
    };
    let rules = addr::Rules {
        append_dot_domain: true,
        ..Default::default()
    };
    let _ = addr::rewrite(&rules, &ctx, &text);
}

/// Daemon entry point.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args = skeleton::daemon_args(&args);
    // The tables are opened before a chroot (master.cf), as Postfix's pre_jail_init.
    let (ctx, (), (tables, dkim)) = skeleton::init_open(
        "cleanup",
        &args,
        |_| (),
        |ctx| {
            let cfg = ctx.jailed_config();
            arc::init(&cfg);
            let mut dkim = dkim::Dkim::from_config(&cfg);
            if ctx.chrooted {
                dkim.preload();
            }
            (Tables::from_config(&cfg), dkim)
        },
    );
    flow::init();
    let mut cleanup = Cleanup::new(&ctx, tables);
    cleanup.dkim = dkim;
    let exit = service::single_server(&ctx, Env::from_master(&ctx), &mut cleanup);
    service::finish(&ctx, exit)
}

/// cleanup's callbacks on the single server: each client sends one `cleanup/1`
/// request and gets one reply (after `in_flow_delay` pacing, see [`flow`]).
pub struct Cleanup {
    settings: Settings,
    tables: Tables,
    /// DKIM signing (`dkim_*`; none unless [`Cleanup::new`]'s caller sets it).
    pub dkim: dkim::Dkim,
}

impl Cleanup {
    /// cleanup with `ctx`'s settings and the tables opened for it (in
    /// production by the `open` hook of `skeleton::init_open`, before a chroot).
    pub fn new(ctx: &Context, tables: Tables) -> Cleanup {
        Cleanup {
            settings: settings(ctx),
            tables,
            dkim: dkim::Dkim::default(),
        }
    }
}

impl Service for Cleanup {
    /// As Postfix's cleanup: a table changed on disk (a new DKIM key table, …) ends this
    /// process before it takes the next client, who is then served with the new table.
    fn pre_accept(&mut self, _ctx: &Context) -> bool {
        !service::table_changed()
    }

    fn serve(&mut self, ctx: &Context, stream: UnixStream) {
        flow::pace(&ctx.config);
        serve(ctx, &self.settings, &self.tables, &mut self.dkim, stream)
    }
}

fn settings(ctx: &Context) -> Settings {
    let c = &ctx.config;
    Settings {
        myhostname: c.str(p::MYHOSTNAME),
        myorigin: c.str(p::MYORIGIN),
        mail_name: c.str(p::MAIL_NAME),
        message_size_limit: c.size(p::MESSAGE_SIZE_LIMIT),
        header_size_limit: c.size(p::HEADER_SIZE_LIMIT),
        header_address_token_limit: c.int(p::HEADER_ADDRESS_TOKEN_LIMIT).max(0) as usize,
        hopcount_limit: c.int(p::HOPCOUNT_LIMIT).max(0) as u64,
        duplicate_filter_limit: c.int(p::DUPLICATE_FILTER_LIMIT).max(0) as usize,
        always_add_missing_headers: c.bool(p::ALWAYS_ADD_MISSING_HEADERS),
        undisclosed_recipients_header: c.str(p::UNDISCLOSED_RECIPIENTS_HEADER),
    }
}

fn serve(ctx: &Context, s: &Settings, t: &Tables, d: &mut dkim::Dkim, mut stream: UnixStream) {
    let timeout = client::ipc_timeout(&ctx.config);
    if let Err(e) = stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
    {
        postern_log::warning(format!("set socket timeout: {e}"));
        return;
    }
    let req = match client::read_frame(&mut stream, client::content_frame_limit(&ctx.config)) {
        Ok(Some(a)) => match CleanupRequest::from_attrs(&a) {
            Ok(r) => r,
            Err(e) => {
                postern_log::warning(format!("bad cleanup request: {e}"));
                return;
            }
        },
        Ok(None) => return,
        Err(e) => {
            postern_log::warning(format!("read cleanup request: {e}"));
            return;
        }
    };
    let reply = enqueue(ctx, s, t, d, &req, &mut stream);
    if let Err(e) = client::write_frame(&mut stream, &reply.to_attrs()) {
        // The client did not learn the outcome; if the file was written it will be
        // delivered and the client may submit again: at least once, never lost.
        postern_log::warning(format!("{}: send reply: {e}", reply.queue_id));
    }
}

fn now() -> Now {
    let z = postern_log::now();
    Now {
        secs: z.timestamp().as_second(),
        offset: z.offset().seconds(),
        zone: z.strftime("%Z").to_string(),
    }
}

fn refuse(r: Refusal) -> CleanupReply {
    CleanupReply {
        status: r.status,
        queue_id: String::new(),
        reason: r.reason,
    }
}

fn enqueue(
    ctx: &Context,
    s: &Settings,
    t: &Tables,
    d: &mut dkim::Dkim,
    req: &CleanupRequest,
    peer: &mut UnixStream,
) -> CleanupReply {
    if !t.open_errors.is_empty() {
        for e in &t.open_errors {
            postern_log::warning(format!("{e} -- message not accepted, try again later"));
        }
        return defer("4.3.0 Error: queue file write error");
    }
    match process::check(req, s) {
        Ok(()) => write(ctx, s, t, d, req, None, peer),
        Err(r) if req.flags & cleanup_flags::BOUNCE_ON_REJECT != 0 => {
            write(ctx, s, t, d, &header_only(req, s), Some(r), peer)
        }
        Err(r) => refuse(r),
    }
}

/// The copy of a refused local submission that is queued only to be bounced:
/// its header, no checks.
fn header_only(req: &CleanupRequest, s: &Settings) -> CleanupRequest {
    let mut h = req.clone();
    let end = postern_mail::header::header_end(&req.content);
    h.content = req.content[..end.header_len.min(s.header_size_limit as usize)].to_vec();
    h.content.push(b'\n');
    h.flags |= cleanup_flags::NO_HEADER_BODY_CHECKS;
    h
}

fn write(
    ctx: &Context,
    s: &Settings,
    t: &Tables,
    d: &mut dkim::Dkim,
    req: &CleanupRequest,
    reject: Option<Refusal>,
    peer: &mut UnixStream,
) -> CleanupReply {
    let q = Queue::new(ctx.config.str(p::QUEUE_DIRECTORY));
    let newfile = match postern_queue_admin::create(&q, "incoming") {
        Ok(f) => f,
        Err(e) => {
            postern_log::warning(format!("create queue file: {e}"));
            return defer("4.3.0 Error: queue file write error");
        }
    };
    if req.flags & cleanup_flags::DISCARD != 0 {
        // Dropping `newfile` removes the file: nothing is queued.
        postern_log::info(format!("{}: discarded", newfile.id));
        return ok(newfile.id.clone());
    }
    let now = now();
    let mut trail = maps::Trail::default();
    let built = process::build(req, s, t, &newfile.id, &now, &mut trail);
    for (warn, line) in std::mem::take(&mut trail.logs) {
        if warn {
            postern_log::warning(line);
        } else {
            postern_log::info(line);
        }
    }
    let built = match (built, trail.fail) {
        (_, Some(f)) if f.status == CleanupStatus::Defer => return refuse(f),
        (_, Some(f)) if req.flags & cleanup_flags::BOUNCE_ON_REJECT != 0 && reject.is_none() => {
            drop(newfile);
            return write(ctx, s, t, d, &header_only(req, s), Some(f), peer);
        }
        (_, Some(f)) => return refuse(f),
        (Ok(b), None) => b,
        (Err(r), None)
            if r.status == CleanupStatus::NoRecipients
                && req.flags & cleanup_flags::BOUNCE_ON_REJECT != 0
                && !req.sender.is_empty() =>
        {
            // Tell the sender rather than dropping the message silently.
            let mut to_sender = req.clone();
            to_sender.recipients = vec![postern_ipc::proto::Recipient::new(req.sender.clone())];
            to_sender.flags &= !cleanup_flags::EXTRACT_RCPTS;
            to_sender.flags |=
                cleanup_flags::NO_ADDRESS_MAPPINGS | cleanup_flags::NO_HEADER_BODY_CHECKS;
            let mut t2 = maps::Trail::default();
            match process::build(&to_sender, s, t, &newfile.id, &now, &mut t2) {
                Ok(mut b) => {
                    b.qf.attrs.push((
                        "cleanup_reject".into(),
                        "5.1.3 No recipient addresses found in message header".into(),
                    ));
                    b
                }
                Err(r) => return refuse(r),
            }
        }
        (Err(r), None)
            if req.flags & cleanup_flags::BOUNCE_ON_REJECT != 0
                && reject.is_none()
                && r.status.is_permanent() =>
        {
            // A local submission was acknowledged already: bounce, never lose it.
            drop(newfile);
            return write(ctx, s, t, d, &header_only(req, s), Some(r), peer);
        }
        (Err(r), None) => return refuse(r),
    };
    if built.verdict.discard {
        // Accepted and dropped (header/body checks DISCARD, logged above).
        return ok(newfile.id.clone());
    }
    let mut built = built;
    if reject.is_none() {
        match milter::inspect(&ctx.config, req, &newfile.id, &mut built, peer) {
            milter::Decision::Queue => {}
            // Dropping `newfile` removes the file: nothing is queued.
            milter::Decision::Discard => return ok(newfile.id.clone()),
            milter::Decision::Refuse(f)
                if req.flags & cleanup_flags::BOUNCE_ON_REJECT != 0 && f.status.is_permanent() =>
            {
                // A local submission was acknowledged already: bounce, never lose it.
                drop(newfile);
                return write(ctx, s, t, d, &header_only(req, s), Some(f), peer);
            }
            milter::Decision::Refuse(f) => return refuse(f),
        }
    }
    let mut qf = built.qf;
    // DKIM signing comes last: the signature covers the milters' edits.
    if reject.is_none()
        && let Err(f) = d.sign(req, &newfile.id, &mut qf)
    {
        return refuse(f);
    }
    // ARC sealing after signing: the seal covers the DKIM-Signature too.
    if reject.is_none()
        && let Err(f) = arc::seal(req, &newfile.id, &mut qf)
    {
        return refuse(f);
    }
    if let Some(r) = reject {
        qf.attrs.push(("cleanup_reject".into(), r.reason));
    }
    let hold = req.flags & cleanup_flags::HOLD != 0 || built.verdict.hold;
    let bytes = postern_qfile::encode(&mut qf);
    // A message for hold/ is written not ready (qmgr ignores it), then moved.
    let mode = if hold { 0o600 } else { 0o700 };
    let id = match newfile.commit(&bytes, mode) {
        Ok(id) => id,
        Err(e) => {
            postern_log::warning(format!("write queue file: {e}"));
            let reason = if e.is_no_space() {
                "4.3.4 insufficient system storage"
            } else {
                "4.3.0 Error: queue file write error"
            };
            return defer(reason);
        }
    };
    if hold && let Err(e) = move_to_hold(&q, &id) {
        postern_log::warning(format!("{id}: move to hold: {e}"));
        if let Err(e) = postern_queue_admin::remove(&q, "incoming", &id) {
            postern_log::warning(format!("{id}: remove: {e}"));
        }
        return defer("4.3.0 Error: queue file write error");
    }
    let mid = postern_mail::header::find(&qf.content, "Message-Id")
        .map(|f| f.value_string())
        .unwrap_or_default();
    postern_log::info(format!("{id}: message-id={mid}"));
    if !hold
        && let Err(e) = client::trigger(&ctx.config, "public", "qmgr", &[trigger::SCAN_INCOMING])
    {
        postern_log::warning(format!(
            "{id}: trigger qmgr: {e} (the next queue scan will find the message)"
        ));
    }
    ok(id)
}

/// Moves a just-written, not yet ready message from incoming/ to hold/ and
/// makes it ready there, durably.
fn move_to_hold(q: &Queue, id: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    postern_queue_admin::move_file(q, "incoming", "hold", id).map_err(std::io::Error::other)?;
    let path = q.dir("hold").join(id);
    let f = std::fs::File::open(&path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o700))?;
    f.sync_all()?;
    postern_sys::durable::fsync_dir(&q.dir("hold"))
        .map_err(|e| std::io::Error::other(e.to_string()))
}

fn ok(queue_id: String) -> CleanupReply {
    CleanupReply {
        status: CleanupStatus::Ok,
        queue_id,
        reason: String::new(),
    }
}

fn defer(reason: &str) -> CleanupReply {
    CleanupReply {
        status: CleanupStatus::Defer,
        queue_id: String::new(),
        reason: reason.to_string(),
    }
}
