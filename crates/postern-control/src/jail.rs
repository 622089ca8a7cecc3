//! The chroot jail of master.cf's chroot column: what `start`, `start-fg` and `reload`
//! put into it, and what `check` and `start` report about it.
//!
//! A daemon of a service marked `y` chroots to `queue_directory` after its pre-init (see
//! `postern_server::skeleton`). The system files it still reads by name after that are
//! copied into the jail, as Debian's Postfix start-up script does: `/etc/localtime`,
//! `/etc/hosts`, `/etc/resolv.conf`, `/etc/services`, `/etc/nsswitch.conf` and
//! `/etc/host.conf` (those that exist) go to `QUEUE/etc/`, refreshed at every start and
//! reload ([`populate`]).
//!
//! [`problems`] names every file a chrooted daemon needs that the jail will not hold
//! (`start` refuses, rather than the daemon failing later with a lookup error):
//! `etc/resolv.conf` for a chrooted smtp/lmtp client or smtpd without `dns_servers`, the
//! builtin SASL file of a chrooted smtpd (a path inside the jail), `/etc/passwd` for a
//! `unix:` table read directly (not through `proxy:`) by a chrooted smtpd, the MTA-STS cache
//! directory of a chrooted smtp client (a path inside the jail). Services whose
//! work lies outside the jail (local, virtual, pipe: mailboxes and commands; proxymap:
//! tables opened on request) are refused when marked `y`.
//!
//! A master that is not root cannot chroot: [`warnings`] says that those services run
//! without chroot (a non-root instance makes no privilege changes at all). It also warns
//! when the daemons log through syslog and the jail has no `dev/log`: a jailed daemon
//! keeps the socket it opened before the chroot, but cannot reconnect after syslogd
//! restarts (Debian's rsyslog makes the socket with `/etc/rsyslog.d/postern.conf`), and
//! when a chrooted smtpd names a Dovecot SASL socket by an absolute path that the jail
//! does not hold (Postfix's convention is `private/auth`; Dovecot may just be down).
//!
//! # Security
//! Only root writes the jail's `etc/` (0755) and its files (0644, root-owned), each
//! replaced by rename so a running daemon never reads half a file. A jail `etc` that is
//! a symbolic link or not root's is refused: a copy must never land outside the queue.
//!
//! # Configuration
//! master.cf's chroot column, `queue_directory`, `dns_servers`, `smtpd_sasl_auth_enable`,
//! `smtpd_sasl_type`, `smtpd_sasl_path`, `local_recipient_maps`, `smtp_mta_sts_enable`,
//! `smtp_mta_sts_cache_directory`, `data_directory`.

use anyhow::{Context as _, Result, bail};
use postern_config::{Config, Service, p};
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The files copied into `QUEUE/etc/` (Debian's Postfix start-up script's list).
pub const COPIED: &[&str] = &[
    "localtime",
    "hosts",
    "resolv.conf",
    "services",
    "nsswitch.conf",
    "host.conf",
];

/// Daemons that run in a jail: everything they open by name after the chroot is
/// under the queue or in [`COPIED`].
const JAILABLE: &[&str] = &[
    "anvil", "bounce", "cleanup", "discard", "error", "flush", "lmtp", "pickup", "qmgr", "qmqpd",
    "showq", "smtp", "smtpd",
];

/// Daemons whose work is outside any jail.
const NOT_JAILABLE: &[(&str, &str)] = &[
    (
        "local",
        "it writes mailboxes and runs commands outside the queue",
    ),
    ("virtual", "it writes mailboxes outside the queue"),
    ("pipe", "it runs commands outside the queue"),
    ("spawn", "it runs commands outside the queue"),
    (
        "proxymap",
        "it opens tables on request, by their names outside the queue",
    ),
];

/// The services of `dir`'s master.cf with chroot `y`, and the configuration.
fn chrooted(dir: &Path) -> Option<(Config, Vec<Service>)> {
    let cfg = postern_server::load::load_unchecked(dir).ok()?.config;
    let master = postern_server::load::load_master(dir).ok()?;
    let jailed: Vec<Service> = master.services.into_iter().filter(|s| s.chroot).collect();
    (!jailed.is_empty()).then_some((cfg, jailed))
}

fn label(master: &Path, s: &Service) -> String {
    format!(
        "{}: line {}: service {}/{}",
        master.display(),
        s.line,
        s.name,
        postern_config::service_type_name(s.kind)
    )
}

/// A non-root instance with chrooted services (they run without chroot); a root one
/// logging through syslog without a log socket in the jail.
pub fn warnings(dir: &Path) -> Vec<String> {
    let Some((cfg, jailed)) = chrooted(dir) else {
        return Vec::new();
    };
    if postern_sys::privs::is_root() {
        let queue = PathBuf::from(cfg.str(p::QUEUE_DIRECTORY));
        let socket = queue.join("dev/log");
        let syslog = cfg.str(p::MAILLOG_FILE).trim().is_empty();
        let mut out = Vec::new();
        if syslog && std::fs::symlink_metadata(&socket).is_err() {
            out.push(format!(
                "chroot jail {}: no {}: a chrooted daemon cannot reconnect to syslog after \
                 syslogd restarts (Debian: /etc/rsyslog.d/postern.conf adds the socket)",
                queue.display(),
                socket.display()
            ));
        }
        let master = dir.join("master.cf");
        for s in jailed.iter().filter(|s| s.command == "smtpd") {
            out.extend(
                dovecot_socket(&cfg.with_overrides(&s.overrides), &queue)
                    .map(|w| format!("{}: chroot=y: {w}", label(&master, s))),
            );
        }
        return out;
    }
    let master = dir.join("master.cf");
    jailed
        .iter()
        .map(|s| {
            format!(
                "{}: chroot=y needs a master started as root: the service runs without chroot",
                label(&master, s)
            )
        })
        .collect()
}

/// A Dovecot SASL socket named by an absolute path is reached inside the jail, below the
/// queue (Postfix's convention is `private/auth`); it may not exist yet (Dovecot not
/// running), so this is a warning.
fn dovecot_socket(cfg: &Config, queue: &Path) -> Option<String> {
    let sasl = cfg.bool(p::SMTPD_SASL_AUTH_ENABLE);
    let path = cfg.str(p::SMTPD_SASL_PATH);
    let path = path.trim();
    let path = path.strip_prefix("unix:").unwrap_or(path);
    if !sasl || cfg.str(p::SMTPD_SASL_TYPE).trim() != "dovecot" || !path.starts_with('/') {
        return None;
    }
    let inside = queue.join(path.trim_start_matches('/'));
    (std::fs::symlink_metadata(&inside).is_err()).then(|| {
        format!(
            "smtpd_sasl_path {path} is reached inside the jail as {}, which does not exist \
             (let Dovecot listen on {}/private/auth and set smtpd_sasl_path = private/auth)",
            inside.display(),
            queue.display()
        )
    })
}

/// Whether the jail will hold `etc/NAME` once [`populate`] ran: it is there, or the
/// system file it is copied from is a regular file.
fn will_hold(queue: &Path, name: &str) -> bool {
    let jailed = queue.join("etc").join(name);
    jailed.is_file() || (COPIED.contains(&name) && Path::new("/etc").join(name).is_file())
}

/// Every file a chrooted daemon of a root master needs that its jail lacks, and every
/// service that cannot run chrooted.
pub fn problems(dir: &Path) -> Vec<String> {
    if !postern_sys::privs::is_root() {
        return Vec::new();
    }
    match chrooted(dir) {
        Some((base, jailed)) => service_problems(&base, &jailed, &dir.join("master.cf")),
        None => Vec::new(),
    }
}

/// [`problems`] of the chrooted services `jailed` of `master`.
fn service_problems(base: &Config, jailed: &[Service], master: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for s in jailed {
        let cfg = base.with_overrides(&s.overrides);
        let queue = PathBuf::from(cfg.str(p::QUEUE_DIRECTORY));
        let here = label(master, s);
        let lacks = |file: &str, why: &str| {
            format!(
                "{here}: chroot=y: the jail {} lacks {file} ({why})",
                queue.display()
            )
        };
        if let Some((_, why)) = NOT_JAILABLE.iter().find(|(c, _)| *c == s.command) {
            out.push(format!(
                "{here}: chroot=y is not possible for {}: {why} (set the chroot column to n)",
                s.command
            ));
            continue;
        }
        if !JAILABLE.contains(&s.command.as_str()) {
            continue; // not run by Postern (reported elsewhere)
        }
        let dns = matches!(s.command.as_str(), "smtp" | "lmtp" | "smtpd");
        if dns && cfg.str(p::DNS_SERVERS).trim().is_empty() && !will_hold(&queue, "resolv.conf") {
            out.push(lacks(
                "etc/resolv.conf",
                "DNS lookups read it; /etc/resolv.conf is missing too, or set dns_servers",
            ));
        }
        if s.command == "smtpd" {
            out.extend(smtpd_problems(&cfg, &queue, &lacks));
        }
        // TLS-RPT and DMARC report records (postern-auth) are written inside the jail.
        for (cmd, on, dir, what) in [
            (
                "smtp",
                p::TLSRPT_REPORTING,
                p::TLSRPT_REPORT_DIRECTORY,
                "tlsrpt_report_directory",
            ),
            (
                "smtpd",
                p::DMARC_REPORTING,
                p::DMARC_REPORT_DIRECTORY,
                "dmarc_report_directory",
            ),
        ] {
            let inside = queue.join(cfg.str(dir).trim().trim_start_matches('/'));
            if s.command == cmd && cfg.bool(on) && !inside.is_dir() {
                out.push(lacks(
                    &inside.display().to_string(),
                    &format!("{what} is written inside the jail; create it owned by mail_owner"),
                ));
            }
        }
        if s.command == "smtp" && cfg.bool(p::SMTP_MTA_STS_ENABLE) {
            let mut cache = cfg.str(p::SMTP_MTA_STS_CACHE_DIRECTORY).trim().to_string();
            if cache.is_empty() {
                cache = format!("{}/mta-sts", cfg.str(p::DATA_DIRECTORY));
            }
            let inside = queue.join(cache.trim_start_matches('/'));
            if !inside.is_dir() {
                out.push(lacks(
                    &inside.display().to_string(),
                    "the MTA-STS cache directory is used inside the jail; \
                     create it owned by mail_owner",
                ));
            }
        }
    }
    out
}

fn smtpd_problems(cfg: &Config, queue: &Path, lacks: &dyn Fn(&str, &str) -> String) -> Vec<String> {
    let mut out = Vec::new();
    let sasl = cfg.bool(p::SMTPD_SASL_AUTH_ENABLE);
    if sasl && cfg.str(p::SMTPD_SASL_TYPE).trim() == "builtin" {
        let path = cfg.str(p::SMTPD_SASL_PATH);
        let inside = queue.join(path.trim().trim_start_matches('/'));
        if !inside.is_file() {
            out.push(lacks(
                &inside.display().to_string(),
                "smtpd_sasl_path is read inside the jail",
            ));
        }
    }
    for item in cfg.list(p::LOCAL_RECIPIENT_MAPS) {
        if item.starts_with("unix:") && !queue.join("etc/passwd").is_file() {
            out.push(lacks(
                "etc/passwd",
                &format!("local_recipient_maps: {item} reads it; use proxy:{item}"),
            ));
        }
    }
    out
}

/// Copies [`COPIED`] into the jail of a root master with chrooted services (nothing
/// otherwise). A system file that does not exist is not copied (and a stale copy of it
/// stays: Debian's script does the same).
pub fn populate(dir: &Path) -> Result<()> {
    if !postern_sys::privs::is_root() {
        return Ok(());
    }
    let Some((cfg, _)) = chrooted(dir) else {
        return Ok(());
    };
    copy_system_files(
        Path::new("/etc"),
        &PathBuf::from(cfg.str(p::QUEUE_DIRECTORY)),
    )
}

/// Copies the [`COPIED`] files of `system` (`/etc`) into `queue/etc`.
fn copy_system_files(system: &Path, queue: &Path) -> Result<()> {
    let etc = queue.join("etc");
    let me = postern_sys::privs::effective_uid();
    match std::fs::symlink_metadata(&etc) {
        Ok(m) if m.is_dir() && m.uid() == me => {}
        Ok(_) => bail!(
            "{}: not a directory of uid {me}: refusing to copy system files into it",
            etc.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir(&etc).with_context(|| format!("mkdir {}", etc.display()))?;
        }
        Err(e) => return Err(e).with_context(|| format!("stat {}", etc.display())),
    }
    std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", etc.display()))?;
    for name in COPIED {
        let src = system.join(name);
        if !src.is_file() {
            continue;
        }
        let data = std::fs::read(&src).with_context(|| format!("read {}", src.display()))?;
        install(&etc, name, &data)?;
    }
    Ok(())
}

/// Writes `etc/NAME` atomically: a fresh temporary file, 0644, fsync, rename.
fn install(etc: &Path, name: &str, data: &[u8]) -> Result<()> {
    let dest = etc.join(name);
    let tmp = etc.join(format!(".{name}.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &dest)
    };
    if let Err(e) = write() {
        if let Err(re) = std::fs::remove_file(&tmp)
            && re.kind() != std::io::ErrorKind::NotFound
        {
            postern_log::warning(format!("remove {}: {re}", tmp.display()));
        }
        return Err(e).with_context(|| format!("copy {} into the jail", dest.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_daemon_is_classified() {
        for c in postern_config::unimplemented::IMPLEMENTED_COMMANDS {
            let jailable = JAILABLE.contains(c);
            let not = NOT_JAILABLE.iter().any(|(n, _)| n == c);
            assert!(*c == "master" || jailable != not, "{c}");
        }
    }

    #[test]
    fn copies_what_exists_and_refreshes() {
        let t = tempfile::tempdir().unwrap();
        let (system, queue) = (t.path().join("sys"), t.path().join("queue"));
        std::fs::create_dir_all(&system).unwrap();
        std::fs::create_dir_all(&queue).unwrap();
        std::fs::write(system.join("hosts"), "127.0.0.1 localhost\n").unwrap();
        std::fs::write(system.join("unrelated"), "x").unwrap();
        copy_system_files(&system, &queue).unwrap();
        let hosts = queue.join("etc/hosts");
        assert_eq!(std::fs::read(&hosts).unwrap(), b"127.0.0.1 localhost\n");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!((mode(&hosts), mode(&queue.join("etc"))), (0o644, 0o755));
        assert!(!queue.join("etc/unrelated").exists() && !queue.join("etc/services").exists());
        std::fs::write(system.join("hosts"), "::1 localhost\n").unwrap();
        copy_system_files(&system, &queue).unwrap();
        assert_eq!(std::fs::read(&hosts).unwrap(), b"::1 localhost\n");
        let names: Vec<_> = std::fs::read_dir(queue.join("etc")).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left");
        // A jail etc that is a symbolic link is refused: nothing lands outside the queue.
        let other = t.path().join("queue2");
        std::fs::create_dir_all(&other).unwrap();
        std::os::unix::fs::symlink(&system, other.join("etc")).unwrap();
        assert!(copy_system_files(&system, &other).is_err());
    }

    #[test]
    fn dovecot_socket_outside_the_jail_is_named() {
        let cfg = |path: &str| {
            let main = format!(
                "smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = {path}\n"
            );
            Config::new(postern_config::parse_main_cf(&main).unwrap())
        };
        let q = Path::new("/nonexistent/queue");
        let w = dovecot_socket(&cfg("/run/dovecot/auth-client"), q).unwrap();
        assert!(
            w.contains("as /nonexistent/queue/run/dovecot/auth-client"),
            "{w}"
        );
        assert_eq!(dovecot_socket(&cfg("private/auth"), q), None);
        assert_eq!(dovecot_socket(&cfg("inet:127.0.0.1:12345"), q), None);
    }

    #[test]
    fn names_what_the_jail_lacks() {
        let t = tempfile::tempdir().unwrap();
        let q = t.path().display().to_string();
        let main = format!(
            "queue_directory = {q}\ndns_servers = 127.0.0.1\nsmtpd_sasl_auth_enable = yes\n\
             smtpd_sasl_type = builtin\nsmtpd_sasl_path = /etc/sasl\n\
             local_recipient_maps = unix:passwd.byname\nsmtp_mta_sts_enable = yes\n\
             data_directory = /var/lib/x\n"
        );
        let base = Config::new(postern_config::parse_main_cf(&main).unwrap());
        let master = "smtp inet n - y - - smtpd\nrelay unix - - y - - smtp\n\
                      local unix - n y - - local\ncleanup unix n - y - 0 cleanup\n";
        let jailed = postern_config::parse_master_cf(master).unwrap().services;
        let got = service_problems(&base, &jailed, Path::new("m"));
        let want = [
            format!("m: line 1: service smtp/inet: chroot=y: the jail {q} lacks {q}/etc/sasl"),
            format!("m: line 1: service smtp/inet: chroot=y: the jail {q} lacks etc/passwd"),
            format!(
                "m: line 2: service relay/unix: chroot=y: the jail {q} lacks {q}/var/lib/x/mta-sts"
            ),
            "m: line 3: service local/unix: chroot=y is not possible for local".to_string(),
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (g, w) in got.iter().zip(&want) {
            assert!(g.starts_with(w.as_str()), "{g} / {w}");
        }
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::fs::write(t.path().join("etc/sasl"), "").unwrap();
        std::fs::write(t.path().join("etc/passwd"), "").unwrap();
        std::fs::create_dir_all(t.path().join("var/lib/x/mta-sts")).unwrap();
        assert_eq!(
            service_problems(&base, &jailed[..2], Path::new("m")),
            Vec::<String>::new()
        );
    }

    #[test]
    fn names_report_directories_the_jail_lacks() {
        let t = tempfile::tempdir().unwrap();
        let q = t.path().display().to_string();
        let main = format!(
            "queue_directory = {q}\ndns_servers = 127.0.0.1\ndata_directory = /var/lib/x\n\
             dmarc_reporting = yes\ntlsrpt_reporting = yes\n"
        );
        let base = Config::new(postern_config::parse_main_cf(&main).unwrap());
        let master = "smtp inet n - y - - smtpd\nrelay unix - - y - - smtp\n";
        let jailed = postern_config::parse_master_cf(master).unwrap().services;
        let got = service_problems(&base, &jailed, Path::new("m"));
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[0].contains(&format!(
            "lacks {q}/var/lib/x/dmarc (dmarc_report_directory"
        )));
        assert!(got[1].contains(&format!(
            "lacks {q}/var/lib/x/tlsrpt (tlsrpt_report_directory"
        )));
        std::fs::create_dir_all(t.path().join("var/lib/x/dmarc")).unwrap();
        std::fs::create_dir_all(t.path().join("var/lib/x/tlsrpt")).unwrap();
        assert_eq!(
            service_problems(&base, &jailed, Path::new("m")),
            Vec::<String>::new()
        );
    }
}
