//! Stand-alone mode (`sendmail -bs`, Postfix's `smtpd -S`): one SMTP session
//! on standard input and output, run by the submitting user. Messages are
//! handed to postdrop (the same path as `sendmail`), so this works while the
//! mail system is stopped; pickup takes them from `maildrop/` later.

use crate::session::{Session, reply};
use postern_ipc::proto::CleanupRequest;
use postern_smtp_proto::Reply;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// Runs the session; returns the exit status.
pub fn run(ctx: postern_server::skeleton::Context) -> std::process::ExitCode {
    let mut settings = crate::settings::Settings::from_config(&ctx.config);
    settings.postdrop_config = Some(ctx.config_dir.clone());
    let policy = match crate::policy::Policy::from_config(&ctx.config) {
        Ok(p) => p,
        Err(e) => postern_log::fatal(e),
    };
    let anvil = crate::anvil::Anvil::new(&ctx.config, &ctx.service);
    let trusted = crate::xclient::Trusted::from_config(&ctx.config);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => postern_log::fatal(format!("start runtime: {e}")),
    };
    let settings = Arc::new(settings);
    rt.block_on(async {
        let io = Box::new(tokio::io::join(tokio::io::stdin(), tokio::io::stdout()));
        let conn = crate::conn::Conn::new(io, settings.timeout);
        let local = Some(std::net::IpAddr::from([127, 0, 0, 1]));
        let mut sess = Session::new(
            &settings,
            &ctx.config,
            &policy,
            &anvil,
            &trusted,
            conn,
            local,
        );
        sess.standalone = true;
        sess.run().await;
    });
    std::process::ExitCode::SUCCESS
}

/// Hands a message to postdrop as a maildrop file.
pub async fn postdrop(sess: &mut Session<'_>, dir: &Path, req: CleanupRequest) -> Reply {
    // Only what a submission may carry (postdrop drops the rest with a warning):
    // the client attributes of a network session mean nothing for `sendmail -bs`.
    let mut attrs: Vec<(String, String)> = req
        .attrs
        .into_iter()
        .filter(|(n, v)| n != "rewrite_context" && postern_qfile::submission_attr_ok(n, v))
        .collect();
    attrs.push(("rewrite_context".into(), "local".into()));
    let mut qf = postern_qfile::QueueFile {
        arrival: req.arrival,
        fullname: String::new(),
        sender: req.sender,
        attrs,
        recipients: req
            .recipients
            .into_iter()
            .map(|r| postern_qfile::RecipientRecord {
                address: r.address,
                original: r.original,
                orcpt: r.orcpt,
                notify: r.notify,
                offset: 0,
                done: false,
            })
            .collect(),
        content: req.content,
        content_offset: 0,
    };
    let bytes = postern_qfile::encode(&mut qf);
    // An ordinary user of a root instance writes maildrop/ only through the
    // set-gid postdrop, as sendmail does.
    let exe = match postern_server::load::setgid_helper(dir, sess.cfg, "postdrop") {
        Some(copy) => copy,
        None => match std::env::current_exe() {
            Ok(e) => e,
            Err(e) => return reply(451, (4, 3, 0), format!("Error: cannot find postdrop: {e}")),
        },
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.arg0("postdrop")
        .arg("-r")
        .arg("-c")
        .arg(dir)
        .env_remove("POSTERN_DAEMON");
    let mut child = match tokio::process::Command::from(cmd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return reply(451, (4, 3, 0), format!("Error: cannot run postdrop: {e}")),
    };
    if let Some(mut stdin) = child.stdin.take()
        && let Err(e) = stdin.write_all(&bytes).await
    {
        postern_log::warning(format!("write to postdrop: {e}"));
    }
    match child.wait().await {
        Ok(st) if st.success() => {
            postern_log::info(format!("{}: message handed to postdrop", sess.client));
            reply(250, (2, 0, 0), "Ok: queued")
        }
        Ok(st) => reply(451, (4, 3, 0), format!("Error: postdrop failed ({st})")),
        Err(e) => reply(451, (4, 3, 0), format!("Error: postdrop: {e}")),
    }
}
