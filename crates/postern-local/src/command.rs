//! Delivery to a command: `|command` in aliases and `.forward` files,
//! `mailbox_command` and `mailbox_command_maps` (Postfix's `command.c` and
//! `pipe_command.c`).
//!
//! The message goes to the command's standard input with a `From ` line,
//! `Return-Path:`, `X-Original-To:` and (with `command` in
//! `prepend_delivered_header`) `Delivered-To:` before it. Standard output
//! and error are captured (the first [`OUTPUT_LIMIT`] bytes, tabs and
//! newlines as spaces, other unprintable characters as `_`) for the result.
//!
//! * The command runs as `/bin/sh -c COMMAND` when it has shell
//!   metacharacters, else directly (split at white space); with
//!   `local_command_shell` set, as `SHELL-WORDS COMMAND`.
//! * Environment: only `export_environment` (names or `name=value`),
//!   `PATH=/usr/bin:/bin`, and `HOME`, `LOGNAME`, `USER`, `SHELL`,
//!   `SENDER`, `RECIPIENT`, `LOCAL`, `DOMAIN`, `EXTENSION`,
//!   `ORIGINAL_RECIPIENT`, `ENVID`, `CLIENT_HOSTNAME`, `CLIENT_ADDRESS`,
//!   `CLIENT_HELO`, `CLIENT_PROTOCOL`, `SASL_METHOD`, `SASL_SENDER`,
//!   `SASL_USERNAME` when known, each value censored with
//!   `command_expansion_filter`. Working directory:
//!   `command_execution_directory` (expanded) when set.
//! * Exit 0 delivers ("delivered to command: COMMAND"). Otherwise, output
//!   that starts with an enhanced status code decides; else a sysexits code
//!   (EX_TEMPFAIL and EX_OSERR defer, the others bounce) with its Postfix
//!   text; else 5.3.0 "Command died with status N". A signal defers.
//!   Running past `command_time_limit` kills the whole process group and
//!   bounces with 5.3.0 "Command time limit exceeded".
//!
//! # Security
//! The child gets the recipient's (or `default_privs`') real and effective
//! uid and gid before it executes anything: `std`'s spawn calls setgid,
//! setgroups (no supplementary groups) and setuid, each checked, in the
//! child, and reports a failure to us as a spawn error. It runs in its own
//! process group so that the time limit reaches its descendants.
//!
//! # Configuration
//! `command_time_limit`, `local_command_shell`, `export_environment`,
//! `command_expansion_filter`, `command_execution_directory`,
//! `execution_directory_expansion_filter`, `prepend_delivered_header`,
//! `default_privs`.

use crate::deliver::{Ctx, DeliveryError};
use crate::expansion::rights;
use crate::recipient::{State, UserAttr};
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Most command output kept for the delivery status text.
pub const OUTPUT_LIMIT: usize = 4096;

/// The error text without std's ` (os error N)` suffix.
pub(crate) fn os_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// How to run one command.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// The command text.
    pub command: String,
    /// `local_command_shell` ("" = the default rule).
    pub shell: String,
    /// Real uid and gid for the child (None: ours).
    pub ids: Option<(u32, u32)>,
    /// The whole environment.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: Option<String>,
    /// `command_time_limit`.
    pub time_limit: Duration,
}

const PLAIN: &str = "1234567890!@%-_=+:,./abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ \t";

/// argv for a command: directly when it is plain words, else through a shell.
pub fn argv(command: &str, shell: &str) -> Vec<String> {
    if !shell.trim().is_empty() {
        let mut v: Vec<String> = shell.split_whitespace().map(String::from).collect();
        v.push(command.to_string());
        return v;
    }
    let plain = command.chars().all(|c| PLAIN.contains(c));
    if plain && !command.trim().is_empty() {
        command
            .split([' ', '\t'])
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect()
    } else {
        vec!["/bin/sh".into(), "-c".into(), command.to_string()]
    }
}

/// Output as Postfix reports it: tabs/newlines → space, unprintable → `_`.
fn printable(out: &[u8]) -> String {
    String::from_utf8_lossy(out)
        .chars()
        .map(|c| match c {
            '\t' | '\n' => ' ',
            c if c.is_control() => '_',
            c => c,
        })
        .collect()
}

/// `X.Y.Z text` at the start of the output: (dsn, text).
fn leading_dsn(out: &str) -> Option<(String, String)> {
    let (code, rest) = out.split_once(' ').unwrap_or((out, ""));
    let mut parts = code.split('.');
    let class = parts.next()?;
    let ok = matches!(class, "2" | "4" | "5")
        && parts.clone().count() == 2
        && parts.all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
    ok.then(|| (code.to_string(), rest.trim_start().to_string()))
}

/// sysexits.h codes: (dsn, text).
fn sysexit(code: i32) -> Option<(&'static str, &'static str)> {
    Some(match code {
        64 => ("5.3.0", "command line usage error"),
        65 => ("5.6.0", "data format error"),
        66 => ("5.3.0", "cannot open input"),
        67 => ("5.1.1", "user unknown"),
        68 => ("5.1.2", "host name unknown"),
        69 => ("5.3.0", "service unavailable"),
        70 => ("5.3.0", "internal software error"),
        71 => ("4.3.0", "system resource problem"),
        72 => ("5.3.0", "critical OS file missing"),
        73 => ("5.2.0", "can't create user output file"),
        74 => ("5.3.0", "input/output error"),
        75 => ("4.3.0", "temporary failure"),
        76 => ("5.5.0", "remote error in protocol"),
        77 => ("5.7.0", "permission denied"),
        78 => ("5.3.5", "local configuration error"),
        _ => return None,
    })
}

fn with_output(text: String, out: &str) -> String {
    if out.is_empty() {
        text
    } else {
        format!("{text}. Command output: {out}")
    }
}

fn classify(dsn: &str, text: String) -> DeliveryError {
    if dsn.starts_with('4') {
        DeliveryError::temp(dsn, text)
    } else {
        DeliveryError::perm(dsn, text)
    }
}

/// Maps the command's end to a result (Postfix's `pipe_command` rules).
pub fn outcome(command: &str, status: Option<ExitStatus>, out: &[u8]) -> Result<(), DeliveryError> {
    let out = printable(out);
    let Some(status) = status else {
        let text = with_output(format!("Command time limit exceeded: \"{command}\""), &out);
        return Err(DeliveryError::perm("5.3.0", text));
    };
    if status.success() {
        return Ok(());
    }
    if let Some(sig) = status.signal() {
        let text = with_output(
            format!("Command died with signal {sig}: \"{command}\""),
            &out,
        );
        return Err(DeliveryError::temp("4.3.0", text));
    }
    let code = status.code().unwrap_or(-1);
    if let Some((dsn, text)) = leading_dsn(&out) {
        let dsn = if dsn.starts_with('2') {
            "5.3.0".to_string()
        } else {
            dsn
        };
        return Err(classify(&dsn, text));
    }
    if let Some((dsn, text)) = sysexit(code) {
        return Err(classify(dsn, with_output(text.to_string(), &out)));
    }
    let text = with_output(
        format!("Command died with status {code}: \"{command}\""),
        &out,
    );
    Err(DeliveryError::perm("5.3.0", text))
}

fn kill_group(pid: u32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    for target in [-pid, pid] {
        if let Err(e) = postern_sys::privs::signal(target, nix::sys::signal::Signal::SIGKILL) {
            postern_log::warning!("cannot kill process (group) {pid}: {e}");
        }
    }
}

/// Runs the command with `input` on its standard input; returns the exit
/// status (None: killed at the time limit) and the first output bytes.
pub fn run(spec: &Spec, input: &[u8]) -> Result<(Option<ExitStatus>, Vec<u8>), DeliveryError> {
    let argv = argv(&spec.command, &spec.shell);
    let spawn_err = |e: &std::io::Error| {
        DeliveryError::temp(
            "4.3.0",
            format!(
                "temporary failure. Command output: execvp {}: {}",
                argv[0],
                os_text(e)
            ),
        )
    };
    let (out_r, out_w) = std::io::pipe().map_err(|e| spawn_err(&e))?;
    let err_w = out_w.try_clone().map_err(|e| spawn_err(&e))?;
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(out_w)
        .stderr(err_w)
        .process_group(0);
    if let Some((uid, gid)) = spec.ids {
        cmd.uid(uid).gid(gid);
    }
    if let Some(d) = &spec.cwd {
        cmd.current_dir(d);
    }
    let spawned = cmd.spawn();
    drop(cmd); // closes our copies of the output pipe's write end
    let mut child = spawned.map_err(|e| spawn_err(&e))?;
    let pid = child.id();
    let deadline = Instant::now() + spec.time_limit.max(Duration::from_secs(1));
    if let Some(mut stdin) = child.stdin.take() {
        let data = input.to_vec();
        std::thread::spawn(move || {
            // EPIPE: the command did not read everything, which is its business.
            if let Err(e) = stdin.write_all(&data)
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                postern_log::warning!("write to command: {e}");
            }
        });
    }
    let (otx, orx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = out_r;
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = OUTPUT_LIMIT.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
        // The receiver may have given up (time limit): nothing to do then.
        if otx.send(kept).is_err() {}
    });
    let (wtx, wrx) = mpsc::channel();
    std::thread::spawn(move || if wtx.send(child.wait()).is_err() {});
    let left = || deadline.saturating_duration_since(Instant::now());
    let mut timed_out = false;
    let status = match wrx.recv_timeout(left()) {
        Ok(r) => r.map_err(|e| spawn_err(&e))?,
        Err(_) => {
            timed_out = true;
            kill_group(pid);
            wrx.recv()
                .map_err(|_| DeliveryError::temp("4.3.0", "lost the command's exit status"))?
                .map_err(|e| spawn_err(&e))?
        }
    };
    // Descendants may still hold the output open: wait for them up to the limit.
    let out = match orx.recv_timeout(left()) {
        Ok(o) => o,
        Err(_) => {
            timed_out = true;
            kill_group(pid);
            orx.recv_timeout(Duration::from_secs(5)).unwrap_or_default()
        }
    };
    Ok((if timed_out { None } else { Some(status) }, out))
}

/// The environment of a delivery command.
fn environment(ctx: &Ctx<'_>, st: &State, usr: &UserAttr) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    for name in &ctx.s.export_environment {
        match name.split_once('=') {
            Some((n, v)) => env.push((n.to_string(), v.to_string())),
            None => {
                if let Some(v) = std::env::var_os(name) {
                    env.push((name.clone(), v.to_string_lossy().into_owned()));
                }
            }
        }
    }
    env.push(("PATH".into(), "/usr/bin:/bin".into()));
    let mut add = |n: &str, v: &str| {
        let f = &ctx.s.command_expansion_filter;
        let clean: String = v
            .chars()
            .map(|c| if f.contains(c) { c } else { '_' })
            .collect();
        env.retain(|(k, _)| k != n);
        env.push((n.to_string(), clean));
    };
    if let Some(pw) = &usr.pw {
        add("HOME", &pw.home);
    }
    add("LOGNAME", &st.user);
    add("USER", &st.user);
    add("SENDER", &st.sender);
    add("RECIPIENT", &st.rcpt.address);
    add("LOCAL", &st.local);
    if let Some(pw) = &usr.pw {
        add("SHELL", &pw.shell);
    }
    if let Some(d) = &st.domain {
        add("DOMAIN", d);
    }
    if let Some(e) = &st.extension {
        add("EXTENSION", e);
    }
    if !st.rcpt.original.is_empty() {
        add("ORIGINAL_RECIPIENT", &st.rcpt.original);
    }
    if !ctx.req.envid.is_empty() {
        add("ENVID", &ctx.req.envid);
    }
    for (var, attr) in [
        ("CLIENT_HOSTNAME", "client_name"),
        ("CLIENT_ADDRESS", "client_address"),
        ("CLIENT_HELO", "helo_name"),
        ("CLIENT_PROTOCOL", "protocol"),
        ("SASL_METHOD", "sasl_method"),
        ("SASL_SENDER", "sasl_sender"),
        ("SASL_USERNAME", "sasl_username"),
    ] {
        if let Some(v) = ctx.qf.attr(attr).filter(|v| !v.is_empty()) {
            add(var, v);
        }
    }
    env
}

/// Delivers the message to `command` with the rights in `usr`.
pub(crate) fn deliver_command(ctx: &mut Ctx<'_>, st: &State, usr: &UserAttr, command: &str) {
    let mut st = st.clone();
    st.level += 1;
    let ids = match rights(ctx.s, usr) {
        Ok(pw) => pw,
        Err(e) => return ctx.fail(&st, e),
    };
    let uid = ids
        .as_ref()
        .map_or_else(postern_sys::privs::effective_uid, |p| p.uid);
    if ctx.been_here(format!("command {}:{uid} {command}", st.user)) {
        return;
    }
    // As Postfix: HOME and SHELL only when a user was chosen (not for
    // default_privs).
    let env_usr = usr.clone();
    let cwd = if ctx.s.command_execution_directory.is_empty() {
        None
    } else {
        let e = crate::expand::expand(
            &ctx.s.command_execution_directory,
            &st.vars(ctx.s, &env_usr),
            Some(&ctx.s.execution_directory_expansion_filter),
        );
        if e.error {
            postern_log::warning!(
                "bad parameter value syntax for command_execution_directory: {}",
                ctx.s.command_execution_directory
            );
            return ctx.defer(&st, "4.3.5", "mail system configuration error");
        }
        Some(e.text).filter(|d| !d.is_empty())
    };
    let spec = Spec {
        command: command.to_string(),
        shell: ctx.s.local_command_shell.clone(),
        ids: ids.as_ref().map(|p| (p.uid, p.gid)),
        env: environment(ctx, &st, &env_usr),
        cwd,
        time_limit: Duration::from_secs(ctx.s.command_time_limit),
    };
    let mut input = from_line(&st.sender, ctx.req.arrival as i64).into_bytes();
    input.extend_from_slice(
        crate::mailbox::prefix(ctx, &st, ctx.s.delivered_header("command")).as_bytes(),
    );
    input.extend_from_slice(&ctx.qf.content);
    let result = run(&spec, &input).and_then(|(status, out)| outcome(command, status, &out));
    match result {
        Ok(()) => ctx.sent(&st, format!("delivered to command: {command}")),
        Err(e) => ctx.fail(&st, e),
    }
}

/// The mbox-style `From ` line given to commands.
fn from_line(sender: &str, arrival: i64) -> String {
    let entry = postern_mailbox::mbox::format_entry(sender, arrival, b"", b"");
    let text = String::from_utf8_lossy(&entry);
    text.lines()
        .next()
        .map(|l| format!("{l}\n"))
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "command_tests.rs"]
mod tests;
