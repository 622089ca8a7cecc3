//! Incremental queue directory scans (Postfix's `qmgr_scan`).
//!
//! A [`Scan`] walks one queue directory with `readdir(3)` (the C library
//! reads the directory in batches of entries), handing out one queue ID at a
//! time: the caller decides how many to take now (for qmgr: while
//! `qmgr_message_active_limit` leaves room) and resumes later exactly where it
//! stopped. Nothing is stat'ed or sorted here; the caller looks at a file
//! ([`crate::Queue::stat`]) only when the scan reaches it, so the cost per
//! message handed out does not grow with the size of the directory.
//!
//! Requests follow Postfix's `qmgr_scan_request`: a request while a pass is
//! under way is remembered and starts a new pass when this one reaches the
//! end of the directory (new files may have been missed by the current pass);
//! the "ignore retry times" flag ([`ScanFlags::all`]) also applies at once to
//! the rest of the pass under way.
//!
//! # Security
//! Only names that are valid queue IDs ([`crate::valid_id`]) are returned;
//! temporary files of writers and anything else in the directory are skipped.
//!
//! # Configuration
//! None: the queue directory comes from the [`crate::Queue`].

use crate::{Queue, ReadError, io, valid_id};
use std::fs::{self, ReadDir};
use std::path::PathBuf;
use std::time::SystemTime;

/// What a pass does with the files it reaches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanFlags {
    /// Ignore the next-retry time (the file's mtime) of deferred mail, and
    /// `defer_transports` for messages found (`postqueue -f`, `sendmail -q`).
    pub all: bool,
}

impl ScanFlags {
    fn merge(self, other: ScanFlags) -> ScanFlags {
        ScanFlags {
            all: self.all || other.all,
        }
    }
}

/// One incremental scan of a queue directory.
#[derive(Debug)]
pub struct Scan {
    queue: &'static str,
    dir: PathBuf,
    handle: Option<ReadDir>,
    flags: ScanFlags,
    /// A new pass was requested (flags to use for it).
    pending: Option<ScanFlags>,
    /// Completed passes (for statistics and tests).
    passes: u64,
    /// When the pass under way started.
    started: SystemTime,
}

impl Scan {
    /// An idle scan of `queue` (one of [`crate::MESSAGE_QUEUES`]).
    pub fn new(q: &Queue, queue: &'static str) -> Scan {
        Scan {
            queue,
            dir: q.dir(queue),
            handle: None,
            flags: ScanFlags::default(),
            pending: None,
            passes: 0,
            started: SystemTime::UNIX_EPOCH,
        }
    }

    /// The queue this scan walks.
    pub fn queue(&self) -> &'static str {
        self.queue
    }

    /// Asks for a pass: starts one now when idle, otherwise one more pass
    /// after the current one (and `all` also for the rest of this one).
    pub fn request(&mut self, flags: ScanFlags) {
        if self.handle.is_some() {
            self.flags = self.flags.merge(ScanFlags { all: flags.all });
        }
        self.pending = Some(self.pending.unwrap_or_default().merge(flags));
    }

    /// Whether a pass is under way or requested.
    pub fn busy(&self) -> bool {
        self.handle.is_some() || self.pending.is_some()
    }

    /// The flags of the pass under way.
    pub fn flags(&self) -> ScanFlags {
        self.flags
    }

    /// When the pass under way started (it names the pass: qmgr remembers the
    /// messages a flush pass fed, so the flush tries each once).
    pub fn pass_started(&self) -> SystemTime {
        self.started
    }

    /// How many passes reached the end of the directory.
    pub fn passes(&self) -> u64 {
        self.passes
    }

    /// The next queue ID of the pass, starting a requested pass when idle.
    /// `Ok(None)`: nothing (more) to do until the next [`Scan::request`].
    pub fn next_id(&mut self) -> Result<Option<String>, ReadError> {
        loop {
            if self.handle.is_none() {
                let Some(flags) = self.pending.take() else {
                    return Ok(None);
                };
                self.flags = flags;
                self.started = SystemTime::now();
                let rd = fs::read_dir(&self.dir).map_err(|e| io("opendir", &self.dir, e))?;
                self.handle = Some(rd);
            }
            let Some(rd) = self.handle.as_mut() else {
                continue;
            };
            match rd.next() {
                Some(Ok(ent)) => {
                    if let Some(id) = ent.file_name().to_str()
                        && valid_id(id)
                    {
                        return Ok(Some(id.to_string()));
                    }
                }
                Some(Err(e)) => {
                    self.handle = None;
                    return Err(io("readdir", &self.dir, e));
                }
                None => {
                    self.handle = None;
                    self.passes += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn queue_with(ids: &[&str]) -> (tempfile::TempDir, Queue) {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("deferred")).unwrap();
        for id in ids {
            fs::write(d.path().join("deferred").join(id), b"x").unwrap();
        }
        let q = Queue::new(d.path());
        (d, q)
    }

    fn drain(s: &mut Scan) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(id) = s.next_id().unwrap() {
            out.push(id);
        }
        out
    }

    #[test]
    fn idle_until_requested_then_one_pass() {
        let (_d, q) = queue_with(&["AAA1", "BBB2", "t.123.4"]);
        let mut s = Scan::new(&q, "deferred");
        assert!(!s.busy());
        assert_eq!(s.next_id().unwrap(), None);
        s.request(ScanFlags::default());
        assert!(s.busy());
        let got: HashSet<String> = drain(&mut s).into_iter().collect();
        assert_eq!(got, HashSet::from(["AAA1".into(), "BBB2".into()]));
        assert_eq!(s.passes(), 1);
        assert!(!s.busy());
        assert_eq!(s.next_id().unwrap(), None, "no second pass unasked");
    }

    #[test]
    fn resumes_where_it_stopped() {
        let ids: Vec<String> = (0..500).map(|i| format!("ID{i:04}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let (_d, q) = queue_with(&refs);
        let mut s = Scan::new(&q, "deferred");
        s.request(ScanFlags::default());
        let mut seen = HashSet::new();
        // Take a few at a time, as qmgr does when the active queue fills up.
        loop {
            let mut took = 0;
            while took < 7 {
                match s.next_id().unwrap() {
                    Some(id) => {
                        assert!(seen.insert(id), "each file once per pass");
                        took += 1;
                    }
                    None => break,
                }
            }
            if took < 7 {
                break;
            }
        }
        assert_eq!(seen.len(), 500);
        assert_eq!(s.passes(), 1);
    }

    #[test]
    fn request_during_pass_restarts_after_it() {
        let (_d, q) = queue_with(&["AAA1", "BBB2", "CCC3"]);
        let mut s = Scan::new(&q, "deferred");
        s.request(ScanFlags::default());
        assert!(s.next_id().unwrap().is_some());
        s.request(ScanFlags { all: true });
        assert!(s.flags().all, "all applies to the pass under way");
        s.request(ScanFlags::default());
        let rest = drain(&mut s);
        // Two remaining of the first pass, then a full second pass.
        assert_eq!(rest.len(), 2 + 3);
        assert_eq!(s.passes(), 2);
        assert!(s.flags().all);
        s.request(ScanFlags::default());
        assert_eq!(drain(&mut s).len(), 3);
        assert!(!s.flags().all, "flags do not stick to later passes");
    }

    #[test]
    fn stat_one_file_when_the_scan_reaches_it() {
        use std::os::unix::fs::PermissionsExt;
        let (d, q) = queue_with(&["AAA1"]);
        let p = d.path().join("deferred/AAA1");
        let e = q.stat("deferred", "AAA1").unwrap();
        assert!(!e.ready);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o700)).unwrap();
        let e = q.stat("deferred", "AAA1").unwrap();
        assert!(e.ready && e.size == 1);
        assert!(
            e.changed >= e.mtime,
            "chmod changed the inode after the write"
        );
        assert!(matches!(
            q.stat("deferred", "NOPE"),
            Err(ReadError::NotFound(_))
        ));
        fs::create_dir(d.path().join("deferred/DIR1")).unwrap();
        assert!(matches!(
            q.stat("deferred", "DIR1"),
            Err(ReadError::NotFound(_))
        ));
        assert!(matches!(
            q.stat("deferred", "../x"),
            Err(ReadError::BadName(_))
        ));
    }

    #[test]
    fn missing_directory_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        let mut s = Scan::new(&q, "incoming");
        s.request(ScanFlags::default());
        assert!(s.next_id().is_err());
        assert!(!s.busy());
    }
}
