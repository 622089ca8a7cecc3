//! The per-destination logs under `$queue_directory/flush/`: one file per
//! eligible site, one queue ID per line, append-only until a send request
//! reads and truncates it (Postfix's fast flush logfiles).
//!
//! # Security
//! File names come only from [`site_to_path`] (lower-case ASCII letters,
//! digits and `_`), never from the request verbatim; queue IDs read back
//! from a log are validated before they name a queue file. Every log is
//! locked (fcntl) while it is appended to or read and truncated.

use postern_queue::Queue;
use std::collections::HashSet;
use std::fs::{File, FileTimes, OpenOptions};
use std::io::{BufRead, BufReader, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Queue IDs remembered per send for duplicate elimination (Postfix's
/// `FLUSH_DUP_FILTER_SIZE`).
pub const DUP_FILTER_SIZE: usize = 10_000;

/// Longest log file name.
pub const MAX_PATH: usize = 255;

/// Maps a site (`example.com`, `[192.0.2.1]`) to a harmless file name:
/// ASCII letters and digits lower-cased, everything else `_`. `None` when
/// empty or too long.
pub fn site_to_path(site: &str) -> Option<String> {
    let p: String = site
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    (!p.is_empty() && p.len() <= MAX_PATH).then_some(p)
}

/// The logs directory.
pub fn dir(q: &Queue) -> PathBuf {
    q.root().join("flush")
}

fn lock(f: &File, path: &Path) -> Result<(), String> {
    postern_sys::lock::fcntl_lock_exclusive(f, true, &path.display().to_string())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Appends `queue_id` to the log named `path`.
pub fn add(q: &Queue, path: &str, queue_id: &str) -> Result<(), String> {
    let p = dir(q).join(path);
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&p)
        .map_err(|e| format!("open fast flush logfile {}: {e}", p.display()))?;
    lock(&f, &p)?;
    f.write_all(format!("{queue_id}\n").as_bytes())
        .map_err(|e| format!("write fast flush logfile {}: {e}", p.display()))
}

/// Makes one message due now: a deferred one gets the current time as its
/// retry time and moves to `incoming/` (as Postfix's flush does); one
/// already in `incoming/` is left there. Returns whether it was found.
pub fn release(q: &Queue, id: &str, now: SystemTime) -> bool {
    for queue in ["deferred", "incoming"] {
        match postern_queue_admin::set_mtime(q, queue, id, now) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => continue,
            Err(e) => {
                postern_log::warning(format!("update {queue}/{id} time stamps: {e}"));
                continue;
            }
        }
        if queue == "deferred"
            && let Err(e) = postern_queue_admin::move_file(q, "deferred", "incoming", id)
            && !e.is_not_found()
        {
            postern_log::warning(format!("{id}: rename from deferred to incoming: {e}"));
        }
        return true;
    }
    false
}

/// Reads the log named `path`, releases every message it lists (each once),
/// truncates it and returns how many lines it had (0: nothing to deliver).
/// A missing log means nothing is queued for the site.
pub fn send(q: &Queue, path: &str) -> Result<usize, String> {
    let p = dir(q).join(path);
    let mut f = match OpenOptions::new().read(true).write(true).open(&p) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(format!("open fast flush logfile {}: {e}", p.display())),
    };
    lock(&f, &p)?;
    let now = SystemTime::now();
    let mut seen = HashSet::new();
    let mut count = 0;
    for line in BufReader::new(&f).split(b'\n') {
        let line = line.map_err(|e| format!("read fast flush logfile {}: {e}", p.display()))?;
        count += 1;
        let id = String::from_utf8_lossy(&line);
        if !postern_queue::valid_id(&id) {
            let shown: String = id.chars().take(30).collect();
            postern_log::warning(format!(
                "bad queue id \"{shown}...\" in fast flush logfile {path}"
            ));
            continue;
        }
        if seen.len() >= DUP_FILTER_SIZE || seen.insert(id.to_string()) {
            release(q, &id, now);
        }
    }
    if count > 0 {
        f.set_len(0)
            .and_then(|()| f.rewind())
            .map_err(|e| format!("truncate fast flush logfile {}: {e}", p.display()))?;
    }
    // Read time for the refresh logic (a noatime mount would not keep it).
    let t = FileTimes::new().set_accessed(now).set_modified(now);
    if let Err(e) = f.set_times(t) {
        postern_log::warning(format!("update {} time stamps: {e}", p.display()));
    }
    Ok(count)
}

/// What [`refresh`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// Logs sent (and truncated).
    pub sent: usize,
    /// Empty logs removed.
    pub removed: usize,
}

/// Sends every non-empty log not read for `max_age` (all of them when zero)
/// and removes empty logs unchanged for `purge_after`. Returns what it did
/// and whether anything was released (qmgr must then scan incoming).
pub fn refresh(q: &Queue, max_age: Duration, purge_after: Duration) -> (Refreshed, bool) {
    let mut done = Refreshed::default();
    let mut released = false;
    let d = dir(q);
    let entries = match std::fs::read_dir(&d) {
        Ok(e) => e,
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                postern_log::warning(format!("scan {}: {e}", d.display()));
            }
            return (done, false);
        }
    };
    let now = SystemTime::now();
    let older = |t: std::io::Result<SystemTime>, age: Duration| {
        t.ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|d| d >= age)
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if site_to_path(&name).as_deref() != Some(name.as_str()) {
            continue;
        }
        let Ok(md) = e.metadata() else { continue };
        if md.len() == 0 {
            if older(md.modified(), purge_after) {
                match std::fs::remove_file(e.path()) {
                    Ok(()) => done.removed += 1,
                    Err(err) => postern_log::warning(format!(
                        "remove logfile {}: {err}",
                        e.path().display()
                    )),
                }
            }
        } else if max_age.is_zero() || older(md.accessed(), max_age) {
            match send(q, &name) {
                Ok(n) => {
                    done.sent += 1;
                    released |= n > 0;
                }
                Err(err) => postern_log::warning(err),
            }
        }
    }
    (done, released)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_names_become_harmless_paths() {
        assert_eq!(site_to_path("Example.COM").as_deref(), Some("example_com"));
        assert_eq!(site_to_path("[192.0.2.1]").as_deref(), Some("_192_0_2_1_"));
        assert_eq!(
            site_to_path("../../etc/passwd").as_deref(),
            Some("______etc_passwd")
        );
        assert_eq!(site_to_path(""), None);
        assert_eq!(site_to_path(&"a".repeat(MAX_PATH + 1)), None);
    }

    fn queue() -> (tempfile::TempDir, Queue) {
        let t = tempfile::tempdir().unwrap();
        for d in ["incoming", "deferred", "active", "flush"] {
            std::fs::create_dir(t.path().join(d)).unwrap();
        }
        let q = Queue::new(t.path());
        (t, q)
    }

    #[test]
    fn add_then_send_releases_each_message_once() {
        let (t, q) = queue();
        let later = SystemTime::now() + Duration::from_secs(3600);
        for id in ["AAA111", "BBB222"] {
            let p = t.path().join("deferred").join(id);
            std::fs::write(&p, b"x").unwrap();
            File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(later)
                .unwrap();
        }
        for id in ["AAA111", "BBB222", "AAA111", "GONE333"] {
            add(&q, "example_com", id).unwrap();
        }
        std::fs::write(t.path().join("flush/example_com"), {
            let mut v = std::fs::read(t.path().join("flush/example_com")).unwrap();
            v.extend_from_slice(b"../bad\n");
            v
        })
        .unwrap();
        assert_eq!(send(&q, "example_com"), Ok(5));
        for id in ["AAA111", "BBB222"] {
            let p = t.path().join("incoming").join(id);
            let m = std::fs::metadata(&p).unwrap().modified().unwrap();
            assert!(m < later, "retry time reset");
        }
        assert_eq!(
            std::fs::metadata(t.path().join("flush/example_com"))
                .unwrap()
                .len(),
            0,
            "log truncated"
        );
        assert_eq!(send(&q, "example_com"), Ok(0));
        assert_eq!(send(&q, "nothing_here"), Ok(0));
    }

    #[test]
    fn refresh_sends_old_logs_and_purges_empty_ones() {
        let (t, q) = queue();
        std::fs::write(t.path().join("deferred/CCC333"), b"x").unwrap();
        add(&q, "a_example", "CCC333").unwrap();
        std::fs::write(t.path().join("flush/empty_example"), b"").unwrap();
        std::fs::write(t.path().join("flush/Not.A.Log"), b"x\n").unwrap();
        let (r, released) = refresh(&q, Duration::ZERO, Duration::ZERO);
        assert_eq!(
            r,
            Refreshed {
                sent: 1,
                removed: 1
            }
        );
        assert!(released);
        assert!(t.path().join("incoming/CCC333").exists());
        assert!(!t.path().join("flush/empty_example").exists());
        assert!(
            t.path().join("flush/Not.A.Log").exists(),
            "foreign files untouched"
        );
        // A fresh, non-empty log is left alone by a normal refresh.
        add(&q, "a_example", "DDD444").unwrap();
        let (r, _) = refresh(&q, Duration::from_secs(3600), Duration::from_secs(3600));
        assert_eq!(r, Refreshed::default());
    }
}
