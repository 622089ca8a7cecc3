//! Sending one day's reports: read the day's records, make the reports, find and check
//! the destinations, and hand each message to Postern's `sendmail` (this executable as
//! `postern [-c DIR] sendmail -i -f SENDER -- RCPT…`: postdrop writes it into the
//! maildrop, pickup and cleanup queue it as local mail). A day is done once: the file
//! `DIR/YYYY-MM-DD.sent` lists the domains reported, and a final `*` line marks the day
//! complete, so a second run (or a run after a failure) sends nothing twice.
//!
//! # Security
//!
//! Run by the administrator or a timer, as root or mail_owner; sendmail's own checks
//! apply to the submission. With a dry-run directory nothing is sent or marked: the
//! messages are written there as `DOMAIN.dmarc.eml` / `DOMAIN.tlsrpt.eml`.
//!
//! # Configuration
//!
//! The directories and [`Meta`] come from the caller (`dmarc_report_directory`,
//! `tlsrpt_report_directory`, `dmarc_report_org_name`, `dmarc_report_email`,
//! `myhostname`); `-c DIR` is passed on to sendmail.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::store::{self, Day};
use super::{Mail, Meta, dmarc, gzip, message, tlsrpt};
use postern_dns::Resolver;

/// What to report.
#[derive(Debug, Clone)]
pub struct Job {
    /// Reporter details.
    pub meta: Meta,
    /// DMARC record directory (`None`: DMARC reporting off).
    pub dmarc_dir: Option<PathBuf>,
    /// TLS record directory (`None`: TLS reporting off).
    pub tls_dir: Option<PathBuf>,
    /// The day reported.
    pub day: Day,
    /// Write messages here instead of sending (and mark nothing).
    pub dry_run: Option<PathBuf>,
    /// The configuration directory passed to sendmail.
    pub config_dir: Option<PathBuf>,
    /// The Public Suffix List (`dmarc_public_suffix_list`) for RFC 7489 §7.1's
    /// organizational domains; `None`: not readable (subdomain rule instead).
    pub psl: Option<crate::verify::psl::PublicSuffixList>,
    /// `queue_directory`: a chrooted smtpd or smtp writes its records at the same path
    /// inside this jail; those are read too.
    pub jail: Option<PathBuf>,
}

/// The day's records of `dir`, and of the same directory inside the jail when there is
/// one (a chrooted writer).
fn read_both<T>(
    job: &Job,
    dir: &Path,
    read: fn(&Path, Day) -> io::Result<Vec<T>>,
) -> Result<Vec<T>, String> {
    let mut dirs = vec![dir.to_path_buf()];
    if let Some(jail) = &job.jail {
        let inside = jail.join(dir.strip_prefix("/").unwrap_or(dir));
        let same = |a: &Path, b: &Path| matches!((fs::canonicalize(a), fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y);
        if inside.is_dir() && !same(&inside, dir) {
            dirs.push(inside);
        }
    }
    let mut out = Vec::new();
    for d in dirs {
        out.extend(
            read(&d, job.day)
                .map_err(|e| format!("read {}: {e}", store::day_path(&d, job.day).display()))?,
        );
    }
    Ok(out)
}

/// Runs `job`; returns one log line per report sent or skipped. An error stops the run
/// (the day stays unmarked for what was not sent).
pub async fn run(job: &Job, resolver: &Resolver) -> Result<Vec<String>, String> {
    let mut log = Vec::new();
    if let Some(dir) = &job.dmarc_dir {
        let records = read_both(job, dir, store::read_dmarc)?;
        let pending = dmarc::aggregate(&records, &job.meta, job.day)
            .into_iter()
            .map(|r| Pending {
                body: r.xml.into_bytes(),
                domain: r.domain,
                report_id: r.report_id,
                rua: r.rua,
            })
            .collect();
        send_day(job, resolver, dir, Kind::Dmarc, pending, &mut log).await?;
    }
    if let Some(dir) = &job.tls_dir {
        let records = read_both(job, dir, store::read_tls)?;
        let pending = tlsrpt::aggregate(&records, &job.meta, job.day)
            .into_iter()
            .map(|r| Pending {
                body: r.json.to_string().into_bytes(),
                domain: r.domain,
                report_id: r.report_id,
                rua: Vec::new(),
            })
            .collect();
        send_day(job, resolver, dir, Kind::Tls, pending, &mut log).await?;
    }
    Ok(log)
}

/// Which report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dmarc,
    Tls,
}

/// A report made, not yet sent.
struct Pending {
    domain: String,
    report_id: String,
    /// DMARC's `rua=` (TLS-RPT's comes from DNS).
    rua: Vec<String>,
    body: Vec<u8>,
}

/// Sends the day's reports of one kind not yet sent, marking each domain done.
async fn send_day(
    job: &Job,
    resolver: &Resolver,
    dir: &Path,
    kind: Kind,
    pending: Vec<Pending>,
    log: &mut Vec<String>,
) -> Result<(), String> {
    let tag = match kind {
        Kind::Dmarc => "dmarc",
        Kind::Tls => "tlsrpt",
    };
    if pending.is_empty() {
        log.push(format!("{tag}: nothing to report for {}", job.day));
    }
    let mut day = Marker::open(dir, job.day, job.dry_run.is_some())?;
    if day.complete {
        log.push(format!("{tag}: {} already reported", job.day));
        return Ok(());
    }
    let (begin, end) = (job.day.start(), job.day.start() + 86_399);
    let submitter = &job.meta.submitter;
    for r in &pending {
        if day.has(&r.domain) {
            continue;
        }
        let dest = match kind {
            Kind::Dmarc => dmarc::destinations(resolver, job.psl.as_ref(), &r.domain, &r.rua).await,
            Kind::Tls => tlsrpt::destinations(resolver, &r.domain).await,
        };
        log.extend(
            dest.skipped
                .iter()
                .map(|s| format!("{tag}: {}: {s}", r.domain)),
        );
        if !dest.addresses.is_empty() {
            let gz = gzip(&r.body).map_err(|e| e.to_string())?;
            let mut m = Mail {
                meta: &job.meta,
                domain: &r.domain,
                report_id: &r.report_id,
                to: &dest.addresses,
                extra_headers: Vec::new(),
                content_type: "multipart/mixed".into(),
                text: format!(
                    "This is a DMARC aggregate report from {submitter} for {} ({}).",
                    r.domain, job.day
                ),
                attachment_type: "application/gzip",
                filename: format!("{submitter}!{}!{begin}!{end}.xml.gz", r.domain),
                gz: &gz,
            };
            if kind == Kind::Tls {
                m.extra_headers = vec![
                    format!("TLS-Report-Domain: {}", r.domain),
                    format!("TLS-Report-Submitter: {submitter}"),
                ];
                m.content_type = "multipart/report; report-type=\"tlsrpt\"".into();
                m.text = format!(
                    "This is an aggregate TLS report from {submitter} for {} ({}).",
                    r.domain, job.day
                );
                m.attachment_type = "application/tlsrpt+gzip";
                m.filename = format!("{submitter}!{}!{begin}!{end}.json.gz", r.domain);
            }
            // RFC 7489 §6.2: no report over a destination's `!size` limit.
            let size = message(&m).len() as u64;
            let (to, over): (Vec<String>, Vec<String>) = dest
                .addresses
                .iter()
                .cloned()
                .partition(|a| !dest.limits.iter().any(|(l, max)| l == a && size > *max));
            for a in &over {
                log.push(format!(
                    "{tag}: {}: report of {size} bytes over the size limit of {a}: not sent",
                    r.domain
                ));
            }
            if !to.is_empty() {
                m.to = &to;
                deliver(job, &format!("{}.{tag}.eml", r.domain), &m)?;
                log.push(format!(
                    "{tag}: {}: report {} sent to {}",
                    r.domain,
                    r.report_id,
                    to.join(", ")
                ));
            }
        }
        day.add(&r.domain)?;
    }
    day.finish()
}

/// Writes the message to the dry-run directory, or submits it.
fn deliver(job: &Job, name: &str, m: &Mail<'_>) -> Result<(), String> {
    let msg = message(m);
    if let Some(dir) = &job.dry_run {
        let path = dir.join(name);
        return fs::write(&path, &msg).map_err(|e| format!("write {}: {e}", path.display()));
    }
    sendmail(job.config_dir.as_deref(), &job.meta.email, m.to, &msg)
}

/// Submits `msg` through this executable's `sendmail`.
pub fn sendmail(
    config_dir: Option<&Path>,
    sender: &str,
    rcpts: &[String],
    msg: &[u8],
) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find sendmail: {e}"))?;
    let mut cmd = Command::new(exe);
    if let Some(d) = config_dir {
        cmd.arg("-c").arg(d);
    }
    cmd.args(["sendmail", "-i", "-f", sender, "--"])
        .args(rcpts)
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    let mut child = cmd.spawn().map_err(|e| format!("run sendmail: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(msg)
            .map_err(|e| format!("write to sendmail: {e}"))?;
    }
    let status = child
        .wait()
        .map_err(|e| format!("wait for sendmail: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("sendmail failed ({status})"))
    }
}

/// The `DAY.sent` file: domains already reported, `*` = day complete.
struct Marker {
    path: PathBuf,
    done: Vec<String>,
    complete: bool,
    dry: bool,
}

impl Marker {
    fn open(dir: &Path, day: Day, dry: bool) -> Result<Marker, String> {
        let path = store::sent_path(dir, day);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("read {}: {e}", path.display())),
        };
        let done: Vec<String> = text.lines().map(str::to_string).collect();
        let complete = done.iter().any(|l| l == "*");
        Ok(Marker {
            path,
            done,
            complete,
            dry,
        })
    }

    fn has(&self, domain: &str) -> bool {
        self.done.iter().any(|d| d == domain)
    }

    fn add(&mut self, line: &str) -> Result<(), String> {
        self.done.push(line.to_string());
        if self.dry {
            return Ok(());
        }
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()))
            .map(|()| {
                // The directory's owner (mail_owner) owns the marker too, as everything
                // under data_directory (`postern check`); best effort.
                let dir = self.path.parent().unwrap_or(Path::new("."));
                if let Ok(md) = fs::metadata(dir) {
                    std::os::unix::fs::chown(&self.path, Some(md.uid()), Some(md.gid())).ok();
                }
            })
            .or_else(|e| match e.kind() {
                // No directory: nothing was ever recorded, nothing to mark.
                io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            })
            .map_err(|e| format!("write {}: {e}", self.path.display()))
    }

    fn finish(&mut self) -> Result<(), String> {
        if self.complete {
            return Ok(());
        }
        self.complete = true;
        self.add("*")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{DmarcRecord, record_dmarc};

    #[test]
    fn jail_records_and_marker() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("data/dmarc");
        let jail = t.path().join("jail");
        let inside = jail.join(dir.strip_prefix("/").unwrap());
        let r = DmarcRecord {
            header_from: "example.org".into(),
            policy_domain: "example.org".into(),
            ..DmarcRecord::default()
        };
        record_dmarc(&dir, &r).unwrap();
        record_dmarc(&inside, &r).unwrap();
        let mut job = Job {
            meta: Meta::default(),
            dmarc_dir: Some(dir.clone()),
            tls_dir: None,
            day: store::today(),
            dry_run: None,
            config_dir: None,
            psl: None,
            jail: None,
        };
        assert_eq!(read_both(&job, &dir, store::read_dmarc).unwrap().len(), 1);
        job.jail = Some(jail);
        assert_eq!(read_both(&job, &dir, store::read_dmarc).unwrap().len(), 2);

        let mut m = Marker::open(&dir, job.day, false).unwrap();
        assert!(!m.complete && !m.has("example.org"));
        m.add("example.org").unwrap();
        m.finish().unwrap();
        let m = Marker::open(&dir, job.day, false).unwrap();
        assert!(m.complete && m.has("example.org"));
        // A dry run marks nothing.
        let other = store::today().prev();
        let mut m = Marker::open(&dir, other, true).unwrap();
        m.finish().unwrap();
        assert!(!store::sent_path(&dir, other).exists());
    }
}
