//! Running one external command: message on its standard input, output
//! captured, a time limit enforced.
//!
//! The command runs without a shell, in its own process group, with a clean
//! environment (the `export_environment` variables and
//! `PATH=/usr/bin:/bin`), in the working directory given, and — when this
//! process is root — with the given uid and gid and no supplementary groups.
//! Three helper threads feed the input, collect the output and wait for the
//! exit; this thread waits for all three until the deadline. At the deadline
//! the whole process group is killed (SIGKILL), as Postfix does, so
//! descendants that hold the pipes open cannot keep the delivery agent busy.
//!
//! # Security
//! Only the first [`OUTPUT_LIMIT`] bytes of output are kept (the rest is
//! read and dropped, so the command never blocks on a full pipe). No
//! descriptor but the three standard ones reaches the command: everything
//! else this process holds is close-on-exec.
//!
//! # Errors
//! A failure to start the command is [`Finish::SpawnFailed`]; a failure to
//! write the message (the command exited without reading it all) is
//! reported next to how the command ended.

use crate::status::{Finish, OUTPUT_LIMIT};
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to run.
pub type Job = postern_server::external::CommandSpec;

/// How it went.
#[derive(Debug)]
pub struct Ran {
    /// How the command ended.
    pub finish: Finish,
    /// The first [`OUTPUT_LIMIT`] bytes of stdout and stderr.
    pub output: Vec<u8>,
    /// Writing the message failed (other than the command not reading it).
    pub write_error: Option<std::io::Error>,
}

enum Event {
    Written(std::io::Result<()>),
    OutputClosed,
    Exited(std::io::Result<std::process::ExitStatus>),
}

fn notify(tx: &mpsc::Sender<Event>, e: Event) {
    if tx.send(e).is_err() {
        // The delivery stopped waiting (time limit): nobody to tell.
    }
}

/// Runs `job` with `input` on its standard input.
pub fn run(job: &Job, input: Vec<u8>) -> Ran {
    let deadline = Instant::now() + job.time_limit;
    let spawned = (|| {
        let (out_r, out_w) = std::io::pipe()?;
        let err_w = out_w.try_clone()?;
        let mut cmd = Command::new(&job.argv[0]);
        cmd.args(&job.argv[1..])
            .env_clear()
            .envs(job.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&job.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(out_w))
            .stderr(Stdio::from(err_w))
            .process_group(0);
        if let Some((uid, gid)) = job.ids {
            cmd.uid(uid).gid(gid);
        }
        let child = cmd.spawn()?;
        // `cmd` holds our copies of the output pipe's write end: drop them,
        // so the reader sees end-of-file when the command's side closes.
        drop(cmd);
        Ok::<_, std::io::Error>((child, out_r))
    })();
    let (mut child, mut out_r) = match spawned {
        Ok(x) => x,
        Err(e) => {
            return Ran {
                finish: Finish::SpawnFailed(e),
                output: Vec::new(),
                write_error: None,
            };
        }
    };
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let output = Arc::new(Mutex::new(Vec::new()));
    if let Some(mut stdin) = child.stdin.take() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let r = stdin.write_all(&input).and_then(|()| stdin.flush());
            drop(stdin);
            notify(&tx, Event::Written(r));
        });
    } else {
        notify(&tx, Event::Written(Ok(())));
    }
    {
        let tx = tx.clone();
        let output = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match out_r.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let mut o = output.lock().unwrap_or_else(|p| p.into_inner());
                        let room = OUTPUT_LIMIT.saturating_sub(o.len());
                        o.extend_from_slice(&buf[..n.min(room)]);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            notify(&tx, Event::OutputClosed);
        });
    }
    std::thread::spawn(move || {
        notify(&tx, Event::Exited(child.wait()));
    });
    let (mut written, mut closed, mut exited) = (None, false, None);
    let mut timed_out = false;
    while exited.is_none() || written.is_none() || !closed {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Event::Written(r)) => written = Some(r),
            Ok(Event::OutputClosed) => closed = true,
            Ok(Event::Exited(r)) => exited = Some(r),
            Err(mpsc::RecvTimeoutError::Timeout) if !timed_out => {
                postern_log::warning(format!(
                    "command {} (pid {pid}): time limit exceeded -- killing it",
                    job.argv[0]
                ));
                timed_out = true;
                postern_server::external::kill_group(pid);
                // Give the kill a bounded moment to take effect.
                let grace = Instant::now() + Duration::from_secs(5);
                while exited.is_none() {
                    match rx.recv_timeout(grace.saturating_duration_since(Instant::now())) {
                        Ok(Event::Exited(r)) => exited = Some(r),
                        Ok(Event::Written(r)) => written = Some(r),
                        Ok(Event::OutputClosed) => {}
                        Err(_) => break,
                    }
                }
                break;
            }
            Err(_) => break,
        }
    }
    let out = output.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let finish = if timed_out {
        Finish::TimedOut
    } else {
        match exited {
            Some(Ok(st)) => match (st.code(), st.signal()) {
                (Some(c), _) => Finish::Exited(c),
                (None, Some(s)) => Finish::Signaled(s),
                (None, None) => Finish::Exited(-1),
            },
            Some(Err(e)) => Finish::SpawnFailed(e),
            None => Finish::TimedOut,
        }
    };
    let write_error = match written {
        Some(Err(e)) if e.kind() != std::io::ErrorKind::BrokenPipe => Some(e),
        _ => None,
    };
    Ran {
        finish,
        output: out,
        write_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(script: &str, secs: u64) -> Job {
        Job {
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            ids: None,
            cwd: std::env::temp_dir(),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            time_limit: Duration::from_secs(secs),
        }
    }

    #[test]
    fn input_output_and_exit() {
        let r = run(
            &job("tr a-z A-Z; echo err >&2; exit 3", 30),
            b"hello\n".to_vec(),
        );
        assert!(matches!(r.finish, Finish::Exited(3)), "{:?}", r.finish);
        assert_eq!(r.output, b"HELLO\nerr\n");
        assert!(r.write_error.is_none());
    }

    #[test]
    fn environment_is_clean() {
        let mut j = job("", 30);
        j.argv = vec!["/usr/bin/env".into()];
        let r = run(&j, Vec::new());
        assert_eq!(String::from_utf8_lossy(&r.output), "PATH=/usr/bin:/bin\n");
    }

    #[test]
    fn unread_input_is_not_an_error() {
        let r = run(&job("exit 0", 30), vec![b'x'; 1 << 20]);
        assert!(matches!(r.finish, Finish::Exited(0)));
        assert!(r.write_error.is_none(), "{:?}", r.write_error);
    }

    #[test]
    fn time_limit_kills_the_group() {
        let r = run(&job("sleep 60 & sleep 60; echo never", 1), Vec::new());
        assert!(matches!(r.finish, Finish::TimedOut), "{:?}", r.finish);
        assert!(r.output.is_empty());
    }

    #[test]
    fn missing_program() {
        let mut j = job("", 1);
        j.argv = vec!["/nonexistent/postern-test".into()];
        let r = run(&j, Vec::new());
        assert!(matches!(r.finish, Finish::SpawnFailed(_)));
    }
}
