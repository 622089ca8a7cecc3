//! Running one command on one connection: the connection is the command's standard input,
//! output and error; the command's end is waited for within its time limit.
//!
//! # Security
//! The command runs without a shell, in its own process group, with the environment and
//! working directory given and, when this process is root, with the given uid and gid and
//! no supplementary groups. No descriptor but the three standard ones reaches it:
//! everything else this process holds is close-on-exec. This process keeps no copy of the
//! connection once the command runs, so the client sees the connection close when the
//! command (and whatever it started) has closed it. At the time limit the whole process
//! group is killed (SIGKILL), as Postfix's spawn_command does.
//!
//! # Configuration
//! None read here: [`Command`] carries what `setup` read.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{ExitStatus, Stdio};
use std::sync::mpsc;

/// What a spawn service runs.
pub type Command = postern_server::external::CommandSpec;

/// How a command ended.
#[derive(Debug)]
pub enum End {
    /// It could not be started.
    NotStarted(std::io::Error),
    /// It exited (or was killed); `timed_out` when this was the time limit's kill.
    Ended {
        /// The wait status.
        status: ExitStatus,
        /// Killed at the time limit.
        timed_out: bool,
    },
    /// Waiting for it failed.
    WaitFailed(std::io::Error),
}

/// Runs the command on `conn` and logs an abnormal end as Postfix's spawn does.
pub fn serve(cmd: &Command, conn: UnixStream) {
    let end = run(cmd, conn.into());
    for line in log_lines(&cmd.argv[0], &end) {
        postern_log::warning(line);
    }
}

/// The warnings for `end` (none for exit status 0).
pub fn log_lines(program: &str, end: &End) -> Vec<String> {
    match end {
        End::NotStarted(e) => vec![format!("spawn_command: execvp {program}: {e}")],
        End::WaitFailed(e) => vec![format!("wait for {program}: {e}")],
        End::Ended { status, .. } => match (status.code(), status.signal()) {
            (Some(0), _) => Vec::new(),
            (Some(c), _) => vec![format!("command {program} exit status {c}")],
            (None, Some(s)) => vec![format!("command {program} killed by signal {s}")],
            (None, None) => vec![format!("command {program} ended abnormally: {status}")],
        },
    }
}

/// Runs `cmd` with `conn` as its standard input, output and error; waits for its end, at
/// most its time limit (then kills its process group and waits for that).
pub fn run(cmd: &Command, conn: OwnedFd) -> End {
    let spawned = (|| {
        let stdout = conn.try_clone()?;
        let stderr = conn.try_clone()?;
        let mut c = std::process::Command::new(&cmd.argv[0]);
        c.args(&cmd.argv[1..])
            .env_clear()
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&cmd.cwd)
            .stdin(Stdio::from(conn))
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .process_group(0);
        if let Some((uid, gid)) = cmd.ids {
            c.uid(uid).gid(gid);
        }
        // `c` owns our copies of the connection: dropping it leaves only the command's.
        c.spawn()
    })();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return End::NotStarted(e),
    };
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        if tx.send(child.wait()).is_err() {
            // The server stopped waiting: nobody to tell.
        }
    });
    let (waited, timed_out) = match rx.recv_timeout(cmd.time_limit) {
        Ok(w) => (w, false),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            postern_log::warning(format!(
                "{}: process id {pid}: command time limit exceeded",
                cmd.argv[0]
            ));
            postern_server::external::kill_group(pid);
            match rx.recv() {
                Ok(w) => (w, true),
                Err(_) => return End::WaitFailed(std::io::Error::other("waiter thread gone")),
            }
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            return End::WaitFailed(std::io::Error::other("waiter thread gone"));
        }
    };
    match waited {
        Ok(status) => End::Ended { status, timed_out },
        Err(e) => End::WaitFailed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::Shutdown;
    use std::time::Duration;

    fn sh(script: &str, secs: u64) -> Command {
        Command {
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            ids: None,
            cwd: std::env::temp_dir(),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            time_limit: Duration::from_secs(secs),
        }
    }

    fn talk(cmd: &Command, input: &[u8]) -> (End, Vec<u8>) {
        let (mut ours, theirs) = UnixStream::pair().unwrap();
        ours.write_all(input).unwrap();
        ours.shutdown(Shutdown::Write).unwrap();
        let cmd = cmd.clone();
        let runner = std::thread::spawn(move || run(&cmd, theirs.into()));
        let mut out = Vec::new();
        ours.read_to_end(&mut out).unwrap();
        (runner.join().unwrap(), out)
    }

    #[test]
    fn connection_is_stdin_stdout_and_stderr() {
        let (end, out) = talk(&sh("tr a-z A-Z; echo err >&2; exit 3", 30), b"hello\n");
        assert_eq!(out, b"HELLO\nerr\n");
        assert_eq!(
            log_lines("/bin/sh", &end),
            ["command /bin/sh exit status 3"]
        );
        let (end, _) = talk(&sh("cat >/dev/null", 30), b"x");
        assert!(log_lines("/bin/sh", &end).is_empty());
    }

    #[test]
    fn environment_is_the_given_one() {
        let mut c = sh("", 30);
        c.argv = vec!["/usr/bin/env".into()];
        let (_, out) = talk(&c, b"");
        assert_eq!(String::from_utf8_lossy(&out), "PATH=/usr/bin:/bin\n");
    }

    #[test]
    fn time_limit_kills_the_group() {
        let started = std::time::Instant::now();
        let (end, out) = talk(&sh("sleep 60 & sleep 60; echo never", 1), b"");
        assert!(out.is_empty());
        assert!(started.elapsed() < Duration::from_secs(30));
        assert!(
            matches!(
                end,
                End::Ended {
                    timed_out: true,
                    ..
                }
            ),
            "{end:?}"
        );
        assert_eq!(
            log_lines("/bin/sh", &end),
            ["command /bin/sh killed by signal 9"]
        );
    }

    #[test]
    fn missing_program() {
        let mut c = sh("", 1);
        c.argv = vec!["/nonexistent/postern-test".into()];
        let (end, out) = talk(&c, b"");
        assert!(out.is_empty());
        let l = log_lines("/nonexistent/postern-test", &end);
        assert!(
            l[0].starts_with("spawn_command: execvp /nonexistent/postern-test: "),
            "{l:?}"
        );
    }
}
