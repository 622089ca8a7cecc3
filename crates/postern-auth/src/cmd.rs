//! The `postern dkim` and `postern auth` commands (dispatched by the `postern` binary):
//!
//! * `postern dkim keygen [-b BITS] [-t rsa|ed25519] -s SELECTOR -d DOMAIN [-D DIR]`
//!   writes `DIR/SELECTOR.private` (PEM, mode 0600) and `DIR/SELECTOR.txt` (the zone-file
//!   line, as opendkim-genkey) and prints the TXT record line.
//! * `postern auth sign [-C CANON] [-H NAME:NAME…] -s SELECTOR -d DOMAIN -k KEYFILE … [FILE]`
//!   prints the message with its `DKIM-Signature:` headers (each `-k` adds one signature
//!   with the `-s`/`-d` given before it).
//! * `postern auth verify [--ip IP] [--helo NAME] [--sender ADDR] [--authserv-id ID] [FILE]`
//!   prints the `Authentication-Results:` header the message would get.
//! * `postern auth spf --ip IP [--helo NAME] [--sender ADDR]` prints the SPF result word,
//!   the `Received-SPF:` header and the domain's explanation of a fail.
//!
//! * `postern auth report [--date YYYY-MM-DD] [--dry-run DIR]` sends the DMARC aggregate
//!   and TLS-RPT reports of a day (default yesterday, UTC) once ([`crate::report::send`]).
//!
//! A global `-c DIR` names the configuration directory (main.cf's `dns_servers`,
//! `myhostname`). Errors are one line, `postern: fatal: MESSAGE`, with sysexits statuses
//! (64 usage, 66/74 input, 78 configuration), as the other commands
//! ([`postern_server::command`]).
//!
//! # Security
//!
//! Run by the administrator; reads only the files named. Input is bounded
//! ([`crate::MAX_MESSAGE`]). A new private key is created exclusively (an existing file
//! is never overwritten) with mode 0600.
//!
//! # Configuration
//!
//! `dns_servers`, `myhostname`.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use postern_config::p;
use postern_server::command::{Fatal, exit, fatal};

use crate::MAX_MESSAGE;
use crate::keys::{Key, KeyType, RSA_BITS, keygen, read_bounded};
use crate::sign::{Canon, Signer, sign};
use crate::verify::{Context, Verifier};

const PROG: &str = "postern";
/// sysexits(3) EX_NOINPUT: an input file cannot be read.
const EX_NOINPUT: u8 = 66;
/// sysexits(3) EX_CANTCREAT: an output file cannot be created.
const EX_CANTCREAT: u8 = 73;

/// `postern [-c DIR] dkim …`; `args[0]` is `dkim`.
pub fn dkim_main(args: Vec<OsString>) -> ExitCode {
    finish(
        parse_args(args).and_then(|(_, a)| match a.first().map(String::as_str) {
            Some("keygen") => keygen_cmd(&a[1..]),
            _ => Err(usage_dkim()),
        }),
    )
}

/// `postern [-c DIR] auth …`; `args[0]` is `auth`.
pub fn auth_main(args: Vec<OsString>) -> ExitCode {
    finish(
        parse_args(args).and_then(|(dir, a)| match a.first().map(String::as_str) {
            Some("sign") => sign_cmd(&a[1..]),
            Some("verify") => verify_cmd(dir.as_deref(), &a[1..]),
            Some("spf") => spf_cmd(dir.as_deref(), &a[1..]),
            Some("report") => report_cmd(dir.as_deref(), &a[1..]),
            _ => Err(usage_auth()),
        }),
    )
}

fn finish(r: Result<(), Fatal>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.report(PROG, false),
    }
}

fn usage_dkim() -> Fatal {
    fatal(
        exit::USAGE,
        "usage: postern dkim keygen [-b bits] [-t rsa|ed25519] -s selector -d domain [-D directory]",
    )
}

fn usage_auth() -> Fatal {
    fatal(
        exit::USAGE,
        "usage: postern auth sign|verify|spf|report [options] (see postern help postern-auth)",
    )
}

/// Drops the verb and takes a leading `-c DIR`; the rest as UTF-8 strings.
fn parse_args(args: Vec<OsString>) -> Result<(Option<PathBuf>, Vec<String>), Fatal> {
    let mut rest = Vec::new();
    for a in args.into_iter().skip(1) {
        match a.into_string() {
            Ok(s) => rest.push(s),
            Err(a) => {
                return Err(fatal(
                    exit::USAGE,
                    format!("argument is not UTF-8: {}", a.to_string_lossy()),
                ));
            }
        }
    }
    let mut dir = None;
    while rest.first().map(String::as_str) == Some("-c") && rest.len() >= 2 {
        dir = Some(PathBuf::from(rest.remove(1)));
        rest.remove(0);
    }
    Ok((dir, rest))
}

/// Options `-x VALUE` / `--long VALUE` in order, and the operands.
#[derive(Debug)]
struct Opts {
    pairs: Vec<(String, String)>,
    operands: Vec<String>,
}

fn opts(args: &[String], known: &[&str], usage: fn() -> Fatal) -> Result<Opts, Fatal> {
    let mut pairs = Vec::new();
    let mut operands = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a.starts_with('-') && a.len() > 1 {
            if !known.contains(&a.as_str()) {
                return Err(fatal(exit::USAGE, format!("unknown option {a}")).or(usage));
            }
            let Some(v) = it.next() else {
                return Err(fatal(exit::USAGE, format!("option {a} needs a value")));
            };
            pairs.push((a.clone(), v.clone()));
        } else {
            operands.push(a.clone());
        }
    }
    Ok(Opts { pairs, operands })
}

trait OrUsage {
    fn or(self, usage: fn() -> Fatal) -> Fatal;
}

impl OrUsage for Fatal {
    fn or(self, usage: fn() -> Fatal) -> Fatal {
        fatal(self.code, format!("{}; {}", self.msg, usage().msg))
    }
}

impl Opts {
    fn last(&self, names: &[&str]) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| names.contains(&k.as_str()))
            .map(|(_, v)| v.as_str())
    }
}

fn keygen_cmd(args: &[String]) -> Result<(), Fatal> {
    let o = opts(args, &["-b", "-t", "-s", "-d", "-D"], usage_dkim)?;
    if !o.operands.is_empty() {
        return Err(usage_dkim());
    }
    let kind = match o.last(&["-t"]) {
        None => KeyType::Rsa,
        Some(t) => KeyType::parse(t)
            .ok_or_else(|| fatal(exit::USAGE, format!("unknown key type {t}: rsa or ed25519")))?,
    };
    let bits = match o.last(&["-b"]) {
        None => 2048,
        Some(b) => b
            .parse::<usize>()
            .ok()
            .filter(|b| RSA_BITS.contains(b))
            .ok_or_else(|| fatal(exit::USAGE, format!("bad key size {b}: 1024 to 4096")))?,
    };
    let (Some(sel), Some(dom)) = (o.last(&["-s"]), o.last(&["-d"])) else {
        return Err(usage_dkim());
    };
    check_label("selector", sel)?;
    check_label("domain", dom)?;
    let dir = PathBuf::from(o.last(&["-D"]).unwrap_or("."));
    let pair = keygen(kind, bits).map_err(|e| fatal(exit::SOFTWARE, e.to_string()))?;
    let private = dir.join(format!("{sel}.private"));
    write_new(&private, pair.private_pem.as_bytes(), 0o600)?;
    let line = format!("{}\n", pair.zone_line(sel, dom));
    let txt = dir.join(format!("{sel}.txt"));
    std::fs::write(&txt, &line)
        .map_err(|e| fatal(EX_CANTCREAT, format!("write {}: {e}", txt.display())))?;
    out(line.as_bytes())
}

/// Selector and domain: DNS names of letters, digits, `-`, `_` and dots.
fn check_label(what: &str, v: &str) -> Result<(), Fatal> {
    let ok = !v.is_empty()
        && v.len() <= 253
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(fatal(exit::USAGE, format!("bad {what} \"{v}\"")))
    }
}

fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), Fatal> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| fatal(EX_CANTCREAT, format!("create {}: {e}", path.display())))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| fatal(exit::IOERR, format!("write {}: {e}", path.display())))
}

fn out(data: &[u8]) -> Result<(), Fatal> {
    let mut so = std::io::stdout().lock();
    so.write_all(data)
        .and_then(|()| so.flush())
        .map_err(|e| fatal(exit::IOERR, format!("write standard output: {e}")))
}

/// The message from FILE or standard input, at most [`MAX_MESSAGE`] bytes.
fn read_message(operands: &[String]) -> Result<Vec<u8>, Fatal> {
    match operands {
        [] => {
            let mut data = Vec::new();
            std::io::stdin()
                .lock()
                .take(MAX_MESSAGE as u64 + 1)
                .read_to_end(&mut data)
                .map_err(|e| fatal(exit::IOERR, format!("read standard input: {e}")))?;
            if data.len() > MAX_MESSAGE {
                return Err(fatal(
                    exit::DATAERR,
                    format!("message larger than {MAX_MESSAGE} bytes"),
                ));
            }
            Ok(data)
        }
        [f] => read_bounded(Path::new(f), MAX_MESSAGE as u64)
            .map_err(|e| fatal(EX_NOINPUT, format!("{f}: {e}"))),
        _ => Err(usage_auth()),
    }
}

fn sign_cmd(args: &[String]) -> Result<(), Fatal> {
    let o = opts(args, &["-s", "-d", "-k", "-H", "-C"], usage_auth)?;
    let mut signers = Vec::new();
    let (mut sel, mut dom) = (None, None);
    let mut headers: Vec<String> = Vec::new();
    let mut canon = (Canon::Relaxed, Canon::Relaxed);
    for (k, v) in &o.pairs {
        match k.as_str() {
            "-s" => sel = Some(v.as_str()),
            "-d" => dom = Some(v.as_str()),
            "-H" => headers = v.split(':').map(|h| h.trim().to_string()).collect(),
            "-C" => {
                canon = Canon::parse_pair(v)
                    .ok_or_else(|| fatal(exit::USAGE, format!("bad canonicalization {v}")))?
            }
            _ => {
                let (Some(s), Some(d)) = (sel, dom) else {
                    return Err(fatal(
                        exit::USAGE,
                        "usage: postern auth sign -s selector -d domain -k keyfile [file]",
                    ));
                };
                check_label("selector", s)?;
                check_label("domain", d)?;
                let key =
                    Key::from_file(Path::new(v)).map_err(|e| fatal(exit::CONFIG, e.to_string()))?;
                signers.push(Signer::with(d, s, key, &headers, canon));
            }
        }
    }
    if signers.is_empty() {
        return Err(fatal(
            exit::USAGE,
            "usage: postern auth sign -s selector -d domain -k keyfile [file]",
        ));
    }
    let msg = read_message(&o.operands)?;
    let headers = sign(&msg, &signers).map_err(|e| fatal(exit::DATAERR, e.to_string()))?;
    // Keep the message's own line ends: CRLF input gets CRLF headers.
    let crlf_input = msg.windows(2).any(|w| w == b"\r\n");
    let headers = if crlf_input {
        headers
    } else {
        headers.replace("\r\n", "\n")
    };
    let mut all = headers.into_bytes();
    all.extend_from_slice(&msg);
    out(&all)
}

/// Loads main.cf and makes the resolver (inside the runtime).
fn setup(dir: Option<&Path>) -> Result<(postern_dns::Resolver, String), Fatal> {
    let dir = postern_server::load::config_dir(dir);
    let cfg = postern_server::load::load(&dir)
        .map_err(|e| fatal(exit::CONFIG, e.to_string()))?
        .config;
    let resolver =
        postern_dns::Resolver::from_config(&cfg).map_err(|e| fatal(exit::CONFIG, e.to_string()))?;
    Ok((resolver, cfg.str(p::MYHOSTNAME)))
}

fn runtime() -> Result<tokio::runtime::Runtime, Fatal> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fatal(exit::OSERR, format!("tokio runtime: {e}")))
}

fn parse_ip(v: Option<&str>) -> Result<Option<IpAddr>, Fatal> {
    v.map(|s| {
        s.parse::<IpAddr>()
            .map_err(|_| fatal(exit::USAGE, format!("bad IP address \"{s}\"")))
    })
    .transpose()
}

/// The sender as given, without angle brackets.
fn sender_arg(v: Option<&str>) -> String {
    let s = v.unwrap_or("");
    s.strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(s)
        .to_string()
}

fn verify_cmd(dir: Option<&Path>, args: &[String]) -> Result<(), Fatal> {
    let o = opts(
        args,
        &["--ip", "--helo", "--sender", "--authserv-id"],
        usage_auth,
    )?;
    let ip = parse_ip(o.last(&["--ip"]))?;
    let msg = read_message(&o.operands)?;
    let rt = runtime()?;
    let header = rt.block_on(async {
        let (resolver, myhostname) = setup(dir)?;
        let ctx = Context {
            authserv_id: o
                .last(&["--authserv-id"])
                .map_or(myhostname, str::to_string),
            ip,
            helo: o.last(&["--helo"]).unwrap_or("").to_string(),
            sender: sender_arg(o.last(&["--sender"])),
        };
        let r = Verifier::new(&resolver).verify(&msg, &ctx).await;
        Ok::<_, Fatal>(r.header)
    })?;
    out(header.replace("\r\n", "\n").as_bytes())
}

fn spf_cmd(dir: Option<&Path>, args: &[String]) -> Result<(), Fatal> {
    let o = opts(args, &["--ip", "--helo", "--sender"], usage_auth)?;
    let Some(ip) = parse_ip(o.last(&["--ip"]))? else {
        return Err(fatal(
            exit::USAGE,
            "usage: postern auth spf --ip address [--helo name] [--sender address]",
        ));
    };
    let helo = o.last(&["--helo"]).unwrap_or("").to_string();
    let sender = sender_arg(o.last(&["--sender"]));
    let rt = runtime()?;
    let report = rt.block_on(async {
        let (resolver, myhostname) = setup(dir)?;
        Ok::<_, Fatal>(
            Verifier::new(&resolver)
                .spf(ip, &helo, &sender, &myhostname)
                .await,
        )
    })?;
    let mut text = format!(
        "{}\n{}",
        report.result,
        report.received_spf.replace("\r\n", "\n")
    );
    if let Some(e) = &report.explanation {
        text.push_str(&format!("explanation: {e}\n"));
    }
    out(text.as_bytes())
}

/// `postern auth report [--date YYYY-MM-DD] [--dry-run DIR]`.
fn report_cmd(dir: Option<&Path>, args: &[String]) -> Result<(), Fatal> {
    use crate::report::{Meta, send, store};
    let o = opts(args, &["--date", "--dry-run"], usage_auth)?;
    if !o.operands.is_empty() {
        return Err(usage_auth());
    }
    let day = match o.last(&["--date"]) {
        None => store::today().prev(),
        Some(d) => store::Day::parse(d)
            .ok_or_else(|| fatal(exit::USAGE, format!("bad date \"{d}\": YYYY-MM-DD")))?,
    };
    let rt = runtime()?;
    let log = rt.block_on(async {
        let cdir = postern_server::load::config_dir(dir);
        let cfg = postern_server::load::load(&cdir)
            .map_err(|e| fatal(exit::CONFIG, e.to_string()))?
            .config;
        let resolver = postern_dns::Resolver::from_config(&cfg)
            .map_err(|e| fatal(exit::CONFIG, e.to_string()))?;
        let job = send::Job {
            meta: Meta {
                org_name: cfg.str(p::DMARC_REPORT_ORG_NAME),
                email: cfg.str(p::DMARC_REPORT_EMAIL),
                submitter: cfg.str(p::MYHOSTNAME),
            },
            dmarc_dir: cfg
                .bool(p::DMARC_REPORTING)
                .then(|| PathBuf::from(cfg.str(p::DMARC_REPORT_DIRECTORY))),
            tls_dir: cfg
                .bool(p::TLSRPT_REPORTING)
                .then(|| PathBuf::from(cfg.str(p::TLSRPT_REPORT_DIRECTORY))),
            day,
            dry_run: o.last(&["--dry-run"]).map(PathBuf::from),
            config_dir: dir.map(Path::to_path_buf),
            psl: crate::verify::psl::PublicSuffixList::load(Path::new(
                &cfg.str(p::DMARC_PUBLIC_SUFFIX_LIST),
            ))
            .ok(),
            jail: Some(PathBuf::from(cfg.str(p::QUEUE_DIRECTORY))),
        };
        if job.dmarc_dir.is_none() && job.tls_dir.is_none() {
            return Err(fatal(
                exit::CONFIG,
                "neither dmarc_reporting nor tlsrpt_reporting is enabled",
            ));
        }
        send::run(&job, &resolver)
            .await
            .map_err(|e| fatal(exit::TEMPFAIL, e))
    })?;
    let mut text = String::new();
    for l in log {
        text.push_str(&format!("postern: {l}\n"));
    }
    out(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn global_config_dir() {
        let (d, rest) =
            parse_args(vec!["auth".into(), "-c".into(), "/x".into(), "spf".into()]).unwrap();
        assert_eq!(d, Some(PathBuf::from("/x")));
        assert_eq!(rest, s(&["spf"]));
    }

    #[test]
    fn option_parsing() {
        let o = opts(&s(&["-s", "a", "-d", "b", "f"]), &["-s", "-d"], usage_auth).unwrap();
        assert_eq!(o.last(&["-s"]), Some("a"));
        assert_eq!(o.operands, s(&["f"]));
        assert_eq!(
            opts(&s(&["-x", "1"]), &["-s"], usage_auth)
                .unwrap_err()
                .code,
            exit::USAGE
        );
        assert_eq!(
            opts(&s(&["-s"]), &["-s"], usage_auth).unwrap_err().code,
            exit::USAGE
        );
        assert_eq!(sender_arg(Some("<a@b>")), "a@b");
        assert!(check_label("selector", "s1._x").is_ok());
        assert!(check_label("selector", "a/b").is_err());
    }

    #[test]
    fn keygen_writes_files_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let args = s(&["-t", "ed25519", "-s", "sel", "-d", "example.com", "-D", d]);
        keygen_cmd(&args).unwrap();
        let key = std::fs::read(dir.path().join("sel.private")).unwrap();
        assert!(Key::from_pem(&key).is_ok());
        let txt = std::fs::read_to_string(dir.path().join("sel.txt")).unwrap();
        assert!(txt.contains("k=ed25519; p="), "{txt}");
        assert_eq!(keygen_cmd(&args).unwrap_err().code, EX_CANTCREAT);
    }
}
