//! The record store of DMARC aggregate reports (RFC 7489 §7.2) and TLS-RPT (RFC 8460):
//! one JSON line per message (DMARC, written by smtpd) or per delivery attempt (TLS, written
//! by the SMTP client), appended to `DIR/YYYY-MM-DD` (UTC day).
//!
//! # Security
//!
//! Each record is one `write(2)` on a file opened with `O_APPEND`, shorter than `PIPE_BUF`
//! (lists are cut to fit), so concurrent writers never interleave. Files are created mode
//! 0600 in a directory of mode 0700 (mail_owner's, made by `postern start`). Reading skips
//! lines that do not parse: a damaged line never stops a report.
//!
//! # Configuration
//!
//! `dmarc_report_directory`, `tlsrpt_report_directory` (the callers pass the directory).

use serde_json::{Value, json};
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest record line (bytes): below Linux's `PIPE_BUF`.
pub const MAX_LINE: usize = 4000;

/// One message's DMARC evaluation, as an aggregate report's `<record>` needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DmarcRecord {
    /// The SMTP client's address.
    pub source_ip: Option<IpAddr>,
    /// The RFC5322.From domain.
    pub header_from: String,
    /// The RFC5321.MailFrom domain (empty: null sender).
    pub envelope_from: String,
    /// The (first) recipient's domain.
    pub envelope_to_domain: String,
    /// The domain whose DMARC record applied (From domain or organisational domain).
    pub policy_domain: String,
    /// Published `p=`: `none`, `quarantine` or `reject`.
    pub p: String,
    /// Published `sp=` (same words; empty = as `p`).
    pub sp: String,
    /// Published `pct=` (100 by default).
    pub pct: u8,
    /// Published `adkim=`: `r` or `s`.
    pub adkim: String,
    /// Published `aspf=`: `r` or `s`.
    pub aspf: String,
    /// What was done: `none`, `quarantine` or `reject`.
    pub disposition: String,
    /// Each DKIM signature: (d= domain, s= selector, result word).
    pub dkim: Vec<(String, String, String)>,
    /// SPF: (domain, scope `mfrom`/`helo`, result word).
    pub spf: (String, String, String),
    /// DMARC's DKIM alignment passed.
    pub dmarc_dkim_aligned: bool,
    /// DMARC's SPF alignment passed.
    pub dmarc_spf_aligned: bool,
    /// The `rua=` URIs of the policy record.
    pub rua: Vec<String>,
}

/// One TLS session outcome of the SMTP client (RFC 8460 §4.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsRecord {
    /// The recipient (policy) domain.
    pub policy_domain: String,
    /// `sts`, `tlsa` or `no-policy-found`.
    pub policy_type: String,
    /// The policy text, one string per line (STS) or per TLSA record.
    pub policy_string: Vec<String>,
    /// STS `mx:` patterns.
    pub mx_host: Vec<String>,
    /// True: the session succeeded with the policy.
    pub success: bool,
    /// The failure's result-type (RFC 8460 §4.3), e.g. `certificate-host-mismatch`.
    pub result_type: String,
    /// Our address.
    pub sending_mta_ip: Option<IpAddr>,
    /// The MX host name tried.
    pub receiving_mx_hostname: String,
    /// The server's address.
    pub receiving_ip: Option<IpAddr>,
    /// Free text about the failure (e.g. the TLS alert).
    pub failure_reason_code: String,
}

impl DmarcRecord {
    /// The record as a JSON value (one store line).
    pub fn to_json(&self) -> Value {
        let dkim: Vec<Value> = self.dkim.iter().map(|(d, s, r)| json!([d, s, r])).collect();
        json!({
            "ip": self.source_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            "hfrom": self.header_from, "efrom": self.envelope_from,
            "eto": self.envelope_to_domain, "domain": self.policy_domain,
            "p": self.p, "sp": self.sp, "pct": self.pct,
            "adkim": self.adkim, "aspf": self.aspf, "disp": self.disposition,
            "dkim": dkim, "spf": [self.spf.0, self.spf.1, self.spf.2],
            "dkim_al": self.dmarc_dkim_aligned, "spf_al": self.dmarc_spf_aligned,
            "rua": self.rua,
        })
    }

    /// A record from a store line; `None` when the line is not one.
    pub fn from_json(v: &Value) -> Option<DmarcRecord> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let triple = |t: &Value| -> Option<(String, String, String)> {
            let a = t.as_array()?;
            Some((
                a.first()?.as_str()?.to_owned(),
                a.get(1)?.as_str()?.to_owned(),
                a.get(2)?.as_str()?.to_owned(),
            ))
        };
        Some(DmarcRecord {
            source_ip: s("ip").and_then(|ip| ip.parse().ok()),
            header_from: s("hfrom")?,
            envelope_from: s("efrom").unwrap_or_default(),
            envelope_to_domain: s("eto").unwrap_or_default(),
            policy_domain: s("domain")?,
            p: s("p").unwrap_or_else(|| "none".into()),
            sp: s("sp").unwrap_or_default(),
            pct: v
                .get("pct")
                .and_then(Value::as_u64)
                .map_or(100, |n| n.min(100) as u8),
            adkim: s("adkim").unwrap_or_else(|| "r".into()),
            aspf: s("aspf").unwrap_or_else(|| "r".into()),
            disposition: s("disp").unwrap_or_else(|| "none".into()),
            dkim: v
                .get("dkim")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(triple).collect())
                .unwrap_or_default(),
            spf: v.get("spf").and_then(triple).unwrap_or_default(),
            dmarc_dkim_aligned: v.get("dkim_al").and_then(Value::as_bool).unwrap_or(false),
            dmarc_spf_aligned: v.get("spf_al").and_then(Value::as_bool).unwrap_or(false),
            rua: strings(v.get("rua")),
        })
    }
}

impl TlsRecord {
    /// The record as a JSON value (one store line).
    pub fn to_json(&self) -> Value {
        json!({
            "domain": self.policy_domain, "type": self.policy_type,
            "policy": self.policy_string, "mx": self.mx_host, "ok": self.success,
            "result": self.result_type,
            "sip": self.sending_mta_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            "mxname": self.receiving_mx_hostname,
            "rip": self.receiving_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            "reason": self.failure_reason_code,
        })
    }

    /// A record from a store line; `None` when the line is not one.
    pub fn from_json(v: &Value) -> Option<TlsRecord> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        Some(TlsRecord {
            policy_domain: s("domain")?,
            policy_type: s("type")?,
            policy_string: strings(v.get("policy")),
            mx_host: strings(v.get("mx")),
            success: v.get("ok").and_then(Value::as_bool)?,
            result_type: s("result").unwrap_or_default(),
            sending_mta_ip: s("sip").and_then(|ip| ip.parse().ok()),
            receiving_mx_hostname: s("mxname").unwrap_or_default(),
            receiving_ip: s("rip").and_then(|ip| ip.parse().ok()),
            failure_reason_code: s("reason").unwrap_or_default(),
        })
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Appends `r` to today's file in `dir` (made 0700 when missing).
pub fn record_dmarc(dir: &Path, r: &DmarcRecord) -> io::Result<()> {
    let mut r = r.clone();
    let mut line = r.to_json().to_string();
    // Cut the lists until the line fits in one atomic write.
    while line.len() >= MAX_LINE && (!r.dkim.is_empty() || !r.rua.is_empty()) {
        if r.dkim.len() > r.rua.len() {
            r.dkim.pop();
        } else {
            r.rua.pop();
        }
        line = r.to_json().to_string();
    }
    append(dir, &line)
}

/// Appends `r` to today's file in `dir` (made 0700 when missing).
pub fn record_tls(dir: &Path, r: &TlsRecord) -> io::Result<()> {
    let mut r = r.clone();
    let mut line = r.to_json().to_string();
    while line.len() >= MAX_LINE && (!r.policy_string.is_empty() || !r.mx_host.is_empty()) {
        if r.policy_string.len() > r.mx_host.len() {
            r.policy_string.pop();
        } else {
            r.mx_host.pop();
        }
        line = r.to_json().to_string();
    }
    if line.len() >= MAX_LINE {
        r.failure_reason_code.truncate(200);
        line = r.to_json().to_string();
    }
    append(dir, &line)
}

fn append(dir: &Path, line: &str) -> io::Result<()> {
    if line.len() >= MAX_LINE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "record too long",
        ));
    }
    if !dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(day_path(dir, today()))?;
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    f.write_all(&buf)
}

/// A UTC day (year, month, day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Day {
    /// Year.
    pub y: i64,
    /// Month 1-12.
    pub m: u32,
    /// Day 1-31.
    pub d: u32,
}

impl Day {
    /// The day containing Unix time `secs`.
    pub fn from_unix(secs: i64) -> Day {
        // Howard Hinnant's civil_from_days.
        let z = secs.div_euclid(86_400) + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let y = yoe + era * 400 + i64::from(m <= 2);
        Day { y, m, d }
    }

    /// Unix time of 00:00:00 UTC of the day.
    pub fn start(self) -> i64 {
        let y = self.y - i64::from(self.m <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.m);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.d) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        (era * 146_097 + doe - 719_468) * 86_400
    }

    /// Parses `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Option<Day> {
        let mut it = s.splitn(3, '-');
        let y: i64 = it.next()?.parse().ok()?;
        let m: u32 = it.next()?.parse().ok()?;
        let d: u32 = it.next()?.parse().ok()?;
        let day = Day { y, m, d };
        (s.len() == 10 && Day::from_unix(day.start()) == day).then_some(day)
    }

    /// The day before.
    pub fn prev(self) -> Day {
        Day::from_unix(self.start() - 86_400)
    }
}

impl std::fmt::Display for Day {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.y, self.m, self.d)
    }
}

/// Current Unix time (seconds).
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Today (UTC).
pub fn today() -> Day {
    Day::from_unix(now())
}

/// The record file of `day` in `dir`.
pub fn day_path(dir: &Path, day: Day) -> PathBuf {
    dir.join(day.to_string())
}

/// The marker that `day`'s reports were sent.
pub fn sent_path(dir: &Path, day: Day) -> PathBuf {
    dir.join(format!("{day}.sent"))
}

/// Every parsable line of `day`'s file (none when it is missing).
fn read_lines(dir: &Path, day: Day) -> io::Result<Vec<Value>> {
    let f = match fs::File::open(day_path(dir, day)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for line in io::BufReader::new(f).split(b'\n') {
        if let Ok(v) = serde_json::from_slice::<Value>(&line?) {
            out.push(v);
        }
    }
    Ok(out)
}

/// The DMARC records of `day`.
pub fn read_dmarc(dir: &Path, day: Day) -> io::Result<Vec<DmarcRecord>> {
    Ok(read_lines(dir, day)?
        .iter()
        .filter_map(DmarcRecord::from_json)
        .collect())
}

/// The TLS records of `day`.
pub fn read_tls(dir: &Path, day: Day) -> io::Result<Vec<TlsRecord>> {
    Ok(read_lines(dir, day)?
        .iter()
        .filter_map(TlsRecord::from_json)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DmarcRecord {
        DmarcRecord {
            source_ip: "192.0.2.1".parse().ok(),
            header_from: "example.org".into(),
            envelope_from: "example.org".into(),
            envelope_to_domain: "example.net".into(),
            policy_domain: "example.org".into(),
            p: "reject".into(),
            pct: 100,
            adkim: "r".into(),
            aspf: "s".into(),
            disposition: "none".into(),
            dkim: vec![("example.org".into(), "s1".into(), "pass".into())],
            spf: ("example.org".into(), "mfrom".into(), "pass".into()),
            dmarc_dkim_aligned: true,
            rua: vec!["mailto:d@example.org".into()],
            ..DmarcRecord::default()
        }
    }

    #[test]
    fn days() {
        assert_eq!(Day::from_unix(0).to_string(), "1970-01-01");
        assert_eq!(Day::from_unix(951_782_400).to_string(), "2000-02-29");
        let d = Day::parse("2024-03-01").unwrap();
        assert_eq!(d.prev().to_string(), "2024-02-29");
        assert_eq!(Day::from_unix(d.start()), d);
        assert!(Day::parse("2023-02-29").is_none());
        assert!(Day::parse("2023-2-01").is_none());
    }

    #[test]
    fn round_trip_and_bound() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("dmarc");
        let r = sample();
        record_dmarc(&sub, &r).unwrap();
        let mut big = sample();
        big.dkim = vec![("d".repeat(200), "s".into(), "fail".into()); 100];
        record_dmarc(&sub, &big).unwrap();
        fs::write(sub.join("junk"), "not json\n").unwrap();
        let got = read_dmarc(&sub, today()).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], r);
        assert!(got[1].dkim.len() < 100);
        let text = fs::read_to_string(day_path(&sub, today())).unwrap();
        assert!(text.lines().all(|l| l.len() < MAX_LINE));

        let t = TlsRecord {
            policy_domain: "example.net".into(),
            policy_type: "sts".into(),
            policy_string: vec!["version: STSv1".into(), "mode: enforce".into()],
            result_type: "certificate-host-mismatch".into(),
            receiving_mx_hostname: "mx.example.net".into(),
            ..TlsRecord::default()
        };
        let tdir = dir.path().join("tls");
        record_tls(&tdir, &t).unwrap();
        assert_eq!(read_tls(&tdir, today()).unwrap(), vec![t]);
    }
}
