//! DMARC aggregate reports (RFC 7489 §7.2): one XML `<feedback>` document per policy
//! domain per UTC day, made from the day's [`DmarcRecord`]s (identical rows counted
//! once), valid against the schema of RFC 7489 appendix C; and the `rua=` destinations
//! with RFC 7489 §7.1's external-destination verification.
//!
//! # Security
//!
//! Every string from a record (domains, selectors, URIs) is XML-escaped; only `mailto:`
//! destinations are used. A destination outside the policy domain's organization gets a
//! report only when `POLICYDOMAIN._report._dmarc.DESTDOMAIN` publishes `v=DMARC1`
//! (otherwise anyone could make this server mail reports to a third party).
//!
//! # Configuration
//!
//! `dmarc_report_org_name`, `dmarc_report_email` (the caller passes them in [`Meta`]).

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::store::{Day, DmarcRecord};
use super::{Meta, mailto, size_limit, xml_escape};
use crate::verify::psl::PublicSuffixList;
use postern_dns::{Lookup, Resolver};

/// One aggregate report, ready to compress and mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The policy domain reported on.
    pub domain: String,
    /// The `rua=` URIs of the domain's latest record of the day.
    pub rua: Vec<String>,
    /// The report's unique id.
    pub report_id: String,
    /// The XML document.
    pub xml: String,
}

/// The aggregate reports of one day's records, one per policy domain that asked for
/// reports (a non-empty `rua=`), sorted by domain.
pub fn aggregate(records: &[DmarcRecord], meta: &Meta, day: Day) -> Vec<Report> {
    let mut by_domain: BTreeMap<String, Vec<&DmarcRecord>> = BTreeMap::new();
    for r in records {
        if !r.policy_domain.is_empty() {
            by_domain
                .entry(r.policy_domain.to_ascii_lowercase())
                .or_default()
                .push(r);
        }
    }
    by_domain
        .into_iter()
        .filter_map(|(domain, recs)| {
            let last = recs.last()?;
            if last.rua.is_empty() {
                return None;
            }
            let report_id = format!("{day}.{domain}@{}", meta.submitter);
            let xml = feedback(&domain, &recs, meta, day, &report_id);
            Some(Report {
                rua: last.rua.clone(),
                domain,
                report_id,
                xml,
            })
        })
        .collect()
}

/// What makes two records one `<record>` row (counted).
type RowKey = (
    String,                        // source ip
    String,                        // disposition
    bool,                          // dkim aligned
    bool,                          // spf aligned
    String,                        // envelope_to
    String,                        // envelope_from
    String,                        // header_from
    Vec<(String, String, String)>, // dkim results
    (String, String, String),      // spf result
);

fn feedback(domain: &str, recs: &[&DmarcRecord], meta: &Meta, day: Day, id: &str) -> String {
    let e = xml_escape;
    let mut rows: BTreeMap<RowKey, u64> = BTreeMap::new();
    for r in recs {
        let key = (
            r.source_ip.map(ip_text).unwrap_or_default(),
            word(&r.disposition, &["none", "quarantine", "reject"], "none"),
            r.dmarc_dkim_aligned,
            r.dmarc_spf_aligned,
            r.envelope_to_domain.to_ascii_lowercase(),
            r.envelope_from.to_ascii_lowercase(),
            r.header_from.to_ascii_lowercase(),
            r.dkim.clone(),
            r.spf.clone(),
        );
        *rows.entry(key).or_default() += 1;
    }
    let last = recs.last().copied().cloned().unwrap_or_default();
    let disp = ["none", "quarantine", "reject"];
    let p = word(&last.p, &disp, "none");
    let sp = if last.sp.is_empty() {
        p.clone()
    } else {
        word(&last.sp, &disp, &p)
    };
    let mut x = String::with_capacity(1024 + rows.len() * 512);
    x.push_str(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n  <version>1.0</version>\n",
    );
    x.push_str(&format!(
        "  <report_metadata>\n    <org_name>{}</org_name>\n    <email>{}</email>\n    <report_id>{}</report_id>\n    <date_range>\n      <begin>{}</begin>\n      <end>{}</end>\n    </date_range>\n  </report_metadata>\n",
        e(&meta.org_name),
        e(&meta.email),
        e(id),
        day.start(),
        day.start() + 86_399
    ));
    x.push_str(&format!(
        "  <policy_published>\n    <domain>{}</domain>\n    <adkim>{}</adkim>\n    <aspf>{}</aspf>\n    <p>{p}</p>\n    <sp>{sp}</sp>\n    <pct>{}</pct>\n    <fo>0</fo>\n  </policy_published>\n",
        e(domain),
        word(&last.adkim, &["r", "s"], "r"),
        word(&last.aspf, &["r", "s"], "r"),
        last.pct.min(100)
    ));
    let pf = |b: bool| if b { "pass" } else { "fail" };
    for ((ip, disp, dkim_al, spf_al, to, from, hfrom, dkim, spf), count) in &rows {
        x.push_str(&format!(
            "  <record>\n    <row>\n      <source_ip>{}</source_ip>\n      <count>{count}</count>\n      <policy_evaluated>\n        <disposition>{disp}</disposition>\n        <dkim>{}</dkim>\n        <spf>{}</spf>\n      </policy_evaluated>\n    </row>\n    <identifiers>\n",
            e(ip),
            pf(*dkim_al),
            pf(*spf_al)
        ));
        if !to.is_empty() {
            x.push_str(&format!("      <envelope_to>{}</envelope_to>\n", e(to)));
        }
        x.push_str(&format!(
            "      <envelope_from>{}</envelope_from>\n      <header_from>{}</header_from>\n    </identifiers>\n    <auth_results>\n",
            e(from),
            e(hfrom)
        ));
        let dkim_words = [
            "none",
            "pass",
            "fail",
            "policy",
            "neutral",
            "temperror",
            "permerror",
        ];
        for (d, s, res) in dkim {
            x.push_str(&format!(
                "      <dkim>\n        <domain>{}</domain>\n",
                e(d)
            ));
            if !s.is_empty() {
                x.push_str(&format!("        <selector>{}</selector>\n", e(s)));
            }
            x.push_str(&format!(
                "        <result>{}</result>\n      </dkim>\n",
                word(res, &dkim_words, "permerror")
            ));
        }
        let (sd, scope, sres) = spf;
        let spf_domain = if sd.is_empty() { hfrom } else { sd };
        x.push_str(&format!(
            "      <spf>\n        <domain>{}</domain>\n        <scope>{}</scope>\n        <result>{}</result>\n      </spf>\n    </auth_results>\n  </record>\n",
            e(spf_domain),
            word(scope, &["helo", "mfrom"], "mfrom"),
            word(
                sres,
                &["none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"],
                "none"
            )
        ));
    }
    x.push_str("</feedback>\n");
    x
}

/// `v` lowercased when it is one of `allowed`, else `default`.
fn word(v: &str, allowed: &[&str], default: &str) -> String {
    let v = v.trim().to_ascii_lowercase();
    if allowed.contains(&v.as_str()) {
        v
    } else {
        default.to_string()
    }
}

/// An address as RFC 7489's `IPAddress` type wants it: dotted IPv4, or IPv6 as eight
/// hexadecimal groups (the schema has no `::` form).
pub fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => v6
            .segments()
            .iter()
            .map(|s| format!("{s:x}"))
            .collect::<Vec<_>>()
            .join(":"),
    }
}

/// True when `dest` (a report address's domain) is outside `policy_domain`'s
/// organization, so RFC 7489 §7.1's verification applies: their organizational domains
/// differ (Public Suffix List). Without the list, "inside" is: the same domain, or one a
/// subdomain of the other.
pub fn is_external(policy_domain: &str, dest: &str, psl: Option<&PublicSuffixList>) -> bool {
    let (a, b) = (
        policy_domain.trim_end_matches('.').to_ascii_lowercase(),
        dest.trim_end_matches('.').to_ascii_lowercase(),
    );
    if let Some(psl) = psl {
        return psl.organizational_domain(&a) != psl.organizational_domain(&b);
    }
    !(a == b || a.ends_with(&format!(".{b}")) || b.ends_with(&format!(".{a}")))
}

/// The outcome of [`destinations`]: addresses to mail, and what was left out (one log
/// line each).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Destinations {
    /// `mailto:` addresses to send the report to.
    pub addresses: Vec<String>,
    /// The `!size` limits of some of them (bytes).
    pub limits: Vec<(String, u64)>,
    /// Why URIs were skipped.
    pub skipped: Vec<String>,
}

/// The `mailto:` addresses of `rua` a report on `domain` may go to: unsupported URIs
/// and unverified external destinations are skipped (RFC 7489 §7.1).
pub async fn destinations(
    resolver: &Resolver,
    psl: Option<&PublicSuffixList>,
    domain: &str,
    rua: &[String],
) -> Destinations {
    let mut out = Destinations::default();
    for uri in rua {
        let Some(addr) = mailto(uri) else {
            out.skipped.push(format!("{uri}: not a mailto: URI"));
            continue;
        };
        let dest = addr.rsplit_once('@').map_or("", |(_, d)| d).to_string();
        if is_external(domain, &dest, psl) {
            let name = format!("{domain}._report._dmarc.{dest}");
            match resolver.txt(&name).await {
                Lookup::Found(txts)
                    if txts.iter().any(|t| {
                        t.trim_start()
                            .get(..8)
                            .is_some_and(|v| v.eq_ignore_ascii_case("v=DMARC1"))
                    }) => {}
                Lookup::TempFail(e) => {
                    out.skipped
                        .push(format!("{uri}: external destination check {name}: {e}"));
                    continue;
                }
                _ => {
                    out.skipped.push(format!(
                        "{uri}: external destination not verified (no v=DMARC1 at {name})"
                    ));
                    continue;
                }
            }
        }
        if let Some(limit) = size_limit(uri) {
            out.limits.push((addr.clone(), limit));
        }
        if !out.addresses.contains(&addr) {
            out.addresses.push(addr);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ip: &str, dkim_al: bool) -> DmarcRecord {
        DmarcRecord {
            source_ip: ip.parse().ok(),
            header_from: "example.org".into(),
            envelope_from: "example.org".into(),
            envelope_to_domain: "example.net".into(),
            policy_domain: "example.org".into(),
            p: "reject".into(),
            sp: String::new(),
            pct: 100,
            adkim: "r".into(),
            aspf: "r".into(),
            disposition: "none".into(),
            dkim: vec![("example.org".into(), "s1".into(), "pass".into())],
            spf: ("example.org".into(), "mfrom".into(), "pass".into()),
            dmarc_dkim_aligned: dkim_al,
            dmarc_spf_aligned: true,
            rua: vec!["mailto:rua@example.org".into()],
        }
    }

    #[test]
    fn rows_are_counted_and_escaped() {
        let meta = Meta {
            org_name: "Org <&>".into(),
            email: "postmaster@example.net".into(),
            submitter: "mx.example.net".into(),
        };
        let day = Day::parse("2026-12-05").unwrap();
        let mut other = rec("2001:db8::1", false);
        other.policy_domain = "other.example".into();
        other.rua.clear();
        let recs = vec![
            rec("192.0.2.1", true),
            rec("192.0.2.1", true),
            rec("192.0.2.2", false),
            other,
        ];
        let reps = aggregate(&recs, &meta, day);
        assert_eq!(reps.len(), 1, "a domain without rua gets none");
        let x = &reps[0].xml;
        assert!(x.contains("<org_name>Org &lt;&amp;&gt;</org_name>"));
        assert!(x.contains("<count>2</count>"));
        assert!(x.contains("<count>1</count>"));
        assert_eq!(x.matches("<record>").count(), 2);
        assert!(x.contains(&format!("<begin>{}</begin>", day.start())));
        assert!(x.contains("<sp>reject</sp>"));
        assert_eq!(reps[0].report_id, "2026-12-05.example.org@mx.example.net");
        assert_eq!(
            ip_text("2001:db8::1".parse().unwrap()),
            "2001:db8:0:0:0:0:0:1"
        );
    }

    #[test]
    fn external() {
        for psl in [None, Some(PublicSuffixList::parse("org\nco.uk\nexample\n"))] {
            let psl = psl.as_ref();
            assert!(!is_external("example.org", "example.org", psl));
            assert!(!is_external("mail.example.org", "example.org", psl));
            assert!(!is_external("example.org", "reports.example.org", psl));
            assert!(is_external("example.org", "thirdparty.example", psl));
            assert!(is_external("example.org", "badexample.org", psl));
        }
        let psl = PublicSuffixList::parse("org\n");
        assert!(!is_external("a.example.org", "b.example.org", Some(&psl)));
        assert!(is_external("a.example.org", "b.example.org", None));
    }
}
