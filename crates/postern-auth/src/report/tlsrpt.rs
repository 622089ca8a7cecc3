//! SMTP TLS reports (RFC 8460): one JSON report per policy domain per UTC day from the
//! SMTP client's [`TlsRecord`]s (§4: policies with their success/failure counts and
//! failure details), and the `rua=` of the domain's `_smtp._tls` TXT record (§3).
//!
//! # Security
//!
//! JSON is written by serde_json (escaped). Only `mailto:` destinations are used;
//! `https:` ones are reported as skipped (not supported). A TXT record that is not
//! exactly one `v=TLSRPTv1` record gives no destination (§3: several records = none).
//!
//! # Configuration
//!
//! `dmarc_report_org_name`, `dmarc_report_email` (in [`Meta`]).

use serde_json::{Value, json};
use std::collections::BTreeMap;

use super::dmarc::Destinations;
use super::store::{Day, TlsRecord};
use super::{Meta, mailto};
use postern_dns::{Lookup, Resolver};

/// One TLS report, ready to compress and mail.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The policy domain reported on.
    pub domain: String,
    /// The report id.
    pub report_id: String,
    /// The JSON document.
    pub json: Value,
}

/// RFC 3339 UTC time of Unix `secs`.
fn rfc3339(secs: i64) -> String {
    let d = Day::from_unix(secs);
    let s = secs - d.start();
    format!("{d}T{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

/// The reports of one day's records, one per policy domain, sorted by domain.
pub fn aggregate(records: &[TlsRecord], meta: &Meta, day: Day) -> Vec<Report> {
    // domain → (policy-type, policy-string, mx-host) → (ok, failures)
    type Failures = BTreeMap<(String, String, String, String, String), u64>;
    type Policies = BTreeMap<(String, Vec<String>, Vec<String>), (u64, Failures)>;
    let mut by_domain: BTreeMap<String, Policies> = BTreeMap::new();
    for r in records {
        if r.policy_domain.is_empty() {
            continue;
        }
        let ptype = match r.policy_type.as_str() {
            t @ ("sts" | "tlsa") => t.to_string(),
            _ => "no-policy-found".to_string(),
        };
        let entry = by_domain
            .entry(r.policy_domain.to_ascii_lowercase())
            .or_default()
            .entry((ptype, r.policy_string.clone(), r.mx_host.clone()))
            .or_default();
        if r.success {
            entry.0 += 1;
        } else {
            let key = (
                if r.result_type.is_empty() {
                    "validation-failure".to_string()
                } else {
                    r.result_type.clone()
                },
                r.sending_mta_ip.map(|i| i.to_string()).unwrap_or_default(),
                r.receiving_mx_hostname.clone(),
                r.receiving_ip.map(|i| i.to_string()).unwrap_or_default(),
                r.failure_reason_code.clone(),
            );
            *entry.1.entry(key).or_default() += 1;
        }
    }
    by_domain
        .into_iter()
        .map(|(domain, policies)| {
            let report_id = format!("{day}.{domain}@{}", meta.submitter);
            let policies: Vec<Value> = policies
                .into_iter()
                .map(|((ptype, pstring, mx), (ok, fails))| {
                    let failed: u64 = fails.values().sum();
                    let mut policy = json!({"policy-type": ptype, "policy-domain": domain});
                    if !pstring.is_empty() {
                        policy["policy-string"] = json!(pstring);
                    }
                    if !mx.is_empty() {
                        policy["mx-host"] = json!(mx);
                    }
                    let details: Vec<Value> = fails
                        .into_iter()
                        .map(|((rt, sip, mxname, rip, reason), n)| {
                            let mut d = json!({"result-type": rt, "failed-session-count": n});
                            for (k, v) in [
                                ("sending-mta-ip", sip),
                                ("receiving-mx-hostname", mxname),
                                ("receiving-ip", rip),
                                ("failure-reason-code", reason),
                            ] {
                                if !v.is_empty() {
                                    d[k] = json!(v);
                                }
                            }
                            d
                        })
                        .collect();
                    let mut p = json!({
                        "policy": policy,
                        "summary": {
                            "total-successful-session-count": ok,
                            "total-failure-session-count": failed,
                        },
                    });
                    if !details.is_empty() {
                        p["failure-details"] = json!(details);
                    }
                    p
                })
                .collect();
            let json = json!({
                "organization-name": meta.org_name,
                "date-range": {
                    "start-datetime": rfc3339(day.start()),
                    "end-datetime": rfc3339(day.start() + 86_399),
                },
                "contact-info": meta.email,
                "report-id": report_id,
                "policies": policies,
            });
            Report {
                domain,
                report_id,
                json,
            }
        })
        .collect()
}

/// The `rua=` URIs of a `v=TLSRPTv1` record (`None`: not one).
pub fn rua_of(txt: &str) -> Option<Vec<String>> {
    let mut fields = txt.split(';').map(str::trim);
    if !fields.next()?.eq_ignore_ascii_case("v=TLSRPTv1") {
        return None;
    }
    let rua = fields.find_map(|f| {
        let (k, v) = f.split_once('=')?;
        k.trim().eq_ignore_ascii_case("rua").then_some(v)
    })?;
    Some(
        rua.split(',')
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect(),
    )
}

/// Where the report on `domain` goes: the `mailto:` URIs of `_smtp._tls.DOMAIN`.
pub async fn destinations(resolver: &Resolver, domain: &str) -> Destinations {
    let mut out = Destinations::default();
    let name = format!("_smtp._tls.{domain}");
    let txts = match resolver.txt(&name).await {
        Lookup::Found(t) => t,
        Lookup::NotFound => {
            out.skipped.push(format!("no TLSRPT record at {name}"));
            return out;
        }
        Lookup::TempFail(e) => {
            out.skipped.push(format!("{name}: {e}"));
            return out;
        }
    };
    let ruas: Vec<Vec<String>> = txts.iter().filter_map(|t| rua_of(t)).collect();
    let [rua] = ruas.as_slice() else {
        out.skipped
            .push(format!("{name}: {} TLSRPT records, not one", ruas.len()));
        return out;
    };
    for uri in rua {
        match mailto(uri) {
            Some(a) if !out.addresses.contains(&a) => out.addresses.push(a),
            Some(_) => {}
            None => out.skipped.push(format!(
                "{uri}: not supported (only mailto: reports are sent)"
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_structure() {
        let meta = Meta {
            org_name: "Example".into(),
            email: "postmaster@example.net".into(),
            submitter: "mx.example.net".into(),
        };
        let sts = TlsRecord {
            policy_domain: "Example.ORG".into(),
            policy_type: "sts".into(),
            policy_string: vec!["version: STSv1".into(), "mode: enforce".into()],
            mx_host: vec!["mx.example.org".into()],
            success: true,
            ..TlsRecord::default()
        };
        let mut bad = sts.clone();
        bad.success = false;
        bad.result_type = "certificate-expired".into();
        bad.receiving_ip = "192.0.2.9".parse().ok();
        let day = Day::parse("2026-12-05").unwrap();
        let reps = aggregate(&[sts.clone(), sts, bad.clone(), bad], &meta, day);
        assert_eq!(reps.len(), 1);
        let j = &reps[0].json;
        assert_eq!(j["date-range"]["start-datetime"], "2026-12-05T00:00:00Z");
        assert_eq!(j["date-range"]["end-datetime"], "2026-12-05T23:59:59Z");
        let p = &j["policies"][0];
        assert_eq!(p["policy"]["policy-domain"], "example.org");
        assert_eq!(p["summary"]["total-successful-session-count"], 2);
        assert_eq!(p["summary"]["total-failure-session-count"], 2);
        assert_eq!(
            p["failure-details"][0]["result-type"],
            "certificate-expired"
        );
        assert_eq!(p["failure-details"][0]["failed-session-count"], 2);
        assert_eq!(p["failure-details"][0]["receiving-ip"], "192.0.2.9");
    }

    #[test]
    fn txt_records() {
        assert_eq!(
            rua_of("v=TLSRPTv1; rua=mailto:a@example.org, https://r.example/x"),
            Some(vec![
                "mailto:a@example.org".into(),
                "https://r.example/x".into()
            ])
        );
        assert_eq!(rua_of("v=TLSRPTv2; rua=mailto:a@example.org"), None);
        assert_eq!(rua_of("v=TLSRPTv1"), None);
    }
}
