"""test_auth_reports.py -- DMARC aggregate reports (RFC 7489 §7.2) and TLS-RPT (RFC 8460)
through a real instance (issue 15).

A day of records is written into the record directories in the store format of
crates/postern-auth/src/report/store.rs (one JSON line per message or TLS session, the file
named after the UTC day), then `postern -c DIR auth report` runs for yesterday and the reports
travel as ordinary local mail (sendmail → postdrop → pickup → cleanup → local) to Maildirs:

  * a DMARC report per policy domain: subject `Report Domain: D Submitter: S Report-ID: <ID>`,
    a gzip attachment whose XML validates against RFC 7489 appendix C's schema
    (tests/data/dmarc-rfc7489.xsd, with xmllint) and carries the counted rows;
  * a rua's `!size` limit (RFC 7489 §6.2): a report over it is not sent to that address;
  * external-destination verification: a rua outside the policy domain is mailed only when
    `POLICY._report._dmarc.DEST` publishes v=DMARC1 (served by the loopback DNS server);
  * a TLS-RPT report from `_smtp._tls.DOMAIN`'s mailto: rua (https: logged, not sent), JSON
    with RFC 8460 §4.4's structure;
  * a second run sends nothing (the day is marked); `--dry-run DIR` writes the messages and
    marks nothing;
  * the SMTP client's records (tlsrpt_reporting = yes): DANE sessions against the TLS peers of
    test_smtp_tls.py, a verified one recorded as success and a TLSA mismatch as
    certificate-host-mismatch, then reported;
  * end to end from smtpd (dmarc_reporting = yes): three SPF-authenticated messages over SMTP
    become one counted row of a report that reaches the rua mailbox and validates.

Needs xmllint (libxml2-utils). Loopback only (tests/integration/dnsserver.py).
"""

from __future__ import annotations

import datetime
import email
import email.policy
import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dnsserver import DnsServer
from test_smtp_tls import certs, peers  # noqa: F401 (fixtures: a test CA, TLS SMTP peers)

XSD = Path(__file__).resolve().parents[1] / "data" / "dmarc-rfc7489.xsd"


def dmarc_line(ip: str, policy: str, rua: list[str], dkim_ok: bool = True) -> str:
    return json.dumps({
        "ip": ip, "hfrom": policy, "efrom": policy, "eto": "example.net", "domain": policy,
        "p": "reject", "sp": "", "pct": 100, "adkim": "r", "aspf": "r",
        "disp": "none" if dkim_ok else "reject",
        "dkim": [[policy, "sel1", "pass" if dkim_ok else "fail"]],
        "spf": [policy, "mfrom", "pass"], "dkim_al": dkim_ok, "spf_al": True, "rua": rua,
    })


def tls_line(ok: bool, result: str = "") -> str:
    return json.dumps({
        "domain": "tls.example", "type": "sts",
        "policy": ["version: STSv1", "mode: enforce", "mx: mx.tls.example", "max_age: 86400"],
        "mx": ["mx.tls.example"], "ok": ok, "result": result, "sip": "",
        "mxname": "mx.tls.example", "rip": "192.0.2.25", "reason": "",
    })


def attachment(path: Path) -> tuple[email.message.EmailMessage, bytes, str]:
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    parts = [p for p in msg.walk() if p.get_filename()]
    assert len(parts) == 1, msg.as_string()[:2000]
    return msg, gzip.decompress(parts[0].get_payload(decode=True)), parts[0].get_content_type()


def validate(xml: bytes, tmp: Path) -> None:
    """xmllint against RFC 7489's schema. As printed, its unprefixed type references do not
    resolve inside its targetNamespace; reports use no namespace, so it is taken out."""
    xsd = tmp / "rua.xsd"
    xsd.write_text(XSD.read_text().replace(' targetNamespace="http://dmarc.org/dmarc-xml/0.1"', ""))
    doc = tmp / "report.xml"
    doc.write_bytes(xml)
    r = subprocess.run(["xmllint", "--noout", "--schema", str(xsd), str(doc)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr + xml.decode()


def test_reports_mailed_validated_once(instance, tmp_path):
    if not shutil.which("xmllint"):
        pytest.skip("xmllint (libxml2-utils) missing")
    yesterday = (datetime.datetime.now(datetime.timezone.utc).date()
                 - datetime.timedelta(days=1)).isoformat()
    zone = {
        ("example.com._report._dmarc.verified.example", "TXT"): ["v=DMARC1"],
        ("_smtp._tls.tls.example", "TXT"):
            ["v=TLSRPTv1; rua=mailto:tlsrpt@example.org,https://reports.example/tlsrpt"],
    }
    records = instance.root / "records"
    dmarc_dir, tls_dir = records / "dmarc", records / "tlsrpt"
    dmarc_dir.mkdir(parents=True)
    tls_dir.mkdir()
    (dmarc_dir / yesterday).write_text("\n".join([
        dmarc_line("192.0.2.1", "example.org", ["mailto:dmarc@example.org!10m"]),
        dmarc_line("192.0.2.1", "example.org", ["mailto:dmarc@example.org!10m"]),
        dmarc_line("2001:db8::7", "example.org", ["mailto:dmarc@example.org!10m"], dkim_ok=False),
        "a damaged line",
        dmarc_line("192.0.2.9", "small.example.org", ["mailto:tiny@example.org!100"]),
        dmarc_line("198.51.100.3", "example.com",
                   ["mailto:agg@verified.example", "mailto:agg@unverified.example"]),
    ]) + "\n")
    (tls_dir / yesterday).write_text("\n".join(
        [tls_line(True), tls_line(True), tls_line(False, "certificate-host-mismatch")]) + "\n")
    if instance.user is not None:
        for p in [records, dmarc_dir, tls_dir, *dmarc_dir.iterdir(), *tls_dir.iterdir()]:
            os.chown(p, instance.user.pw_uid, instance.user.pw_gid)
    with DnsServer(zone) as port:
        instance.run("postconf", "-e",
                     f"dns_servers = 127.0.0.1:{port}",
                     "mydestination = localhost, example.org, verified.example, unverified.example",
                     "myhostname = mx.reports.test",
                     "dmarc_reporting = yes", "tlsrpt_reporting = yes",
                     f"dmarc_report_directory = {dmarc_dir}",
                     f"tlsrpt_report_directory = {tls_dir}",
                     "dmarc_report_org_name = Postern Test",
                     "dmarc_report_email = reports@example.net")
        instance.start()
        # A dry run first: messages in a directory, nothing sent, nothing marked.
        dry = instance.root / "dry"
        dry.mkdir()
        if instance.user is not None:
            os.chown(dry, instance.user.pw_uid, instance.user.pw_gid)
        instance.run("auth", "report", "--dry-run", str(dry))
        assert sorted(p.name for p in dry.iterdir()) == [
            "example.com.dmarc.eml", "example.org.dmarc.eml", "tls.example.tlsrpt.eml"]
        assert not instance.new_messages("tiny")
        assert not (dmarc_dir / f"{yesterday}.sent").exists()

        out = instance.run("auth", "report").stdout.decode()
        assert "dmarc: example.org: report" in out, out
        assert "external destination not verified" in out and "unverified.example" in out, out
        assert "https://reports.example/tlsrpt: not supported" in out, out
        assert "over the size limit of tiny@example.org: not sent" in out, out

        # DMARC report of example.org: three messages, two rows.
        (path,) = instance.wait_for_mail("dmarc", 1)
        msg, xml, ctype = attachment(path)
        assert ctype == "application/gzip"
        assert msg["Subject"] == (f"Report Domain: example.org Submitter: mx.reports.test "
                                  f"Report-ID: <{yesterday}.example.org@mx.reports.test>")
        validate(xml, tmp_path)
        text = xml.decode()
        assert "<count>2</count>" in text and "<count>1</count>" in text, text
        assert "<source_ip>2001:db8:0:0:0:0:0:7</source_ip>" in text, text
        assert "<org_name>Postern Test</org_name>" in text, text

        # example.com: only the verified external destination got it.
        (path,) = instance.wait_for_mail("agg", 1)
        msg, xml, _ = attachment(path)
        assert msg["To"] == "agg@verified.example", msg["To"]
        validate(xml, tmp_path)

        # TLS-RPT: RFC 8460 §4.4 structure.
        (path,) = instance.wait_for_mail("tlsrpt", 1)
        msg, body, ctype = attachment(path)
        assert ctype == "application/tlsrpt+gzip"
        assert msg.get_content_type() == "multipart/report"
        assert msg.get_param("report-type") == "tlsrpt"
        assert msg["TLS-Report-Domain"] == "tls.example"
        report = json.loads(body)
        for key in ("organization-name", "date-range", "contact-info", "report-id", "policies"):
            assert key in report, report
        assert report["date-range"]["start-datetime"] == f"{yesterday}T00:00:00Z"
        (pol,) = report["policies"]
        assert pol["policy"]["policy-type"] == "sts"
        assert pol["policy"]["policy-domain"] == "tls.example"
        assert pol["policy"]["mx-host"] == ["mx.tls.example"]
        assert pol["summary"] == {"total-successful-session-count": 2,
                                  "total-failure-session-count": 1}
        (fail,) = pol["failure-details"]
        assert fail["result-type"] == "certificate-host-mismatch"
        assert fail["failed-session-count"] == 1 and fail["receiving-ip"] == "192.0.2.25"

        # Once only: a second run sends nothing.
        again = instance.run("auth", "report").stdout.decode()
        assert "dmarc: " + yesterday + " already reported" in again, again
        assert "tlsrpt: " + yesterday + " already reported" in again, again
        assert len(instance.new_messages("dmarc")) == 1


def test_smtp_client_records_dane_outcomes(instance, certs, peers):
    """The SMTP client's hook: with tlsrpt_reporting = yes, a DANE-verified session is
    recorded as a success and a TLSA mismatch as certificate-host-mismatch (the test peers
    and DNS of test_smtp_tls.py); the day's records then make one TLS-RPT report per
    domain, here written by --dry-run."""
    from test_smtp_tls import HOST, dane_zone, send, setup, tlsa

    tls_dir = instance.root / "tlsrpt-records"
    zone = dane_zone(peers, {"self": [tlsa(certs, "self", 3, 1, 1)], "wrong": ["3 1 1 " + "00" * 32]})
    zone[(f"_smtp._tls.{HOST}", "TXT")] = ["v=TLSRPTv1; rua=mailto:tlsrpt@example.org"]
    dns = setup(instance, certs, zone, "smtp_tls_security_level = dane",
                "smtp_dns_support_level = dnssec", "smtp_tls_CAfile =",
                "tlsrpt_reporting = yes", f"tlsrpt_report_directory = {tls_dir}",
                routes={"self.test": f"[{HOST}]:{peers['self'].port}",
                        "wrong.test": f"[{HOST}]:{peers['wrong'].port}"})
    try:
        send(instance, "u@self.test", "u@wrong.test")
        today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
        lines = [json.loads(l) for l in (tls_dir / today).read_text().splitlines()]
        assert {(l["type"], l["ok"], l["result"]) for l in lines} == {
            ("tlsa", True, ""), ("tlsa", False, "certificate-host-mismatch")}, lines
        assert all(l["domain"] == HOST and l["rip"] == "127.0.0.1" for l in lines), lines
        assert all(l["policy"] and l["policy"][0].startswith("3 1 1 ") for l in lines), lines
        assert oct((tls_dir / today).stat().st_mode & 0o777) == "0o600"
        dry = instance.root / "dry"
        dry.mkdir()
        if instance.user is not None:
            os.chown(dry, instance.user.pw_uid, instance.user.pw_gid)
        out = instance.run("auth", "report", "--date", today, "--dry-run", str(dry)).stdout.decode()
        assert f"tlsrpt: {HOST}: report" in out, out
        _, body, _ = attachment(dry / f"{HOST}.tlsrpt.eml")
        # One policy entry per TLSA record set (each peer has its own): 1 success, 1 failure.
        pols = json.loads(body)["policies"]
        assert all(p["policy"]["policy-type"] == "tlsa" for p in pols), pols
        assert sorted((p["summary"]["total-successful-session-count"],
                       p["summary"]["total-failure-session-count"]) for p in pols) == [(0, 1), (1, 0)], pols
        (fail,) = [p for p in pols if "failure-details" in p]
        assert fail["failure-details"][0]["result-type"] == "certificate-host-mismatch", fail
    finally:
        dns.close()


def test_smtpd_records_reported(instance, tmp_path):
    """End to end with smtpd's hook: mail verified by smtpd (SPF pass, DKIM none, p=none)
    is recorded under dmarc_reporting = yes, and today's report reaches the rua mailbox
    and validates."""
    if not shutil.which("xmllint"):
        pytest.skip("xmllint (libxml2-utils) missing")
    import smtplib
    zone = {
        ("example.org", "TXT"): ["v=spf1 ip4:127.0.0.2 -all"],
        ("_dmarc.example.org", "TXT"): ["v=DMARC1; p=none; rua=mailto:dmarc@example.org"],
    }
    with DnsServer(zone) as port:
        instance.run("postconf", "-e", f"dns_servers = 127.0.0.1:{port}",
                     "myhostname = mx.reports.test", "mynetworks = 127.0.0.1/32",
                     "mydestination = localhost, example.org",
                     "smtpd_authentication_checks = spf, dkim, dmarc",
                     "dmarc_reporting = yes", f"dmarc_report_directory = {instance.root}/dmarc")
        instance.start()
        instance.wait_for(lambda: instance.run("status", check=False).returncode == 0, what="started")
        for i in range(3):
            msg = (f"From: <a@example.org>\nTo: <rcpt@localhost>\nSubject: r{i}\n"
                   f"Message-ID: <r{i}@example.org>\n\nhello\n").encode()
            with smtplib.SMTP("127.0.0.1", instance.port, local_hostname="client.test", timeout=20,
                              source_address=("127.0.0.2", 0)) as c:
                c.sendmail("a@example.org", ["rcpt@localhost"], msg)
        instance.wait_for_mail("rcpt", 3)
        today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
        out = instance.run("auth", "report", "--date", today).stdout.decode()
        assert "dmarc: example.org: report" in out, out
        (path,) = instance.wait_for_mail("dmarc", 1)
        _, xml, _ = attachment(path)
        validate(xml, tmp_path)
        text = xml.decode()
        assert "<source_ip>127.0.0.2</source_ip>" in text and "<count>3</count>" in text, text
        assert "<spf>pass</spf>" in text and "<dkim>fail</dkim>" in text, text
