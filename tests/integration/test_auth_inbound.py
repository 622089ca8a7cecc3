"""test_auth_inbound.py -- smtpd's inbound email authentication (issue 15) through a real
instance whose `dns_servers` is a loopback DNS server (dnsserver.py; never the machine's
resolver). Clients connect from 127.0.0.2/127.0.0.3 (`mynetworks = 127.0.0.1/32`, so
only 127.0.0.1 is a trusted client).

  * pass: a dkimpy-signed message (key from `postern dkim keygen`) from the SPF-authorised
    127.0.0.2 gets `Authentication-Results: mx.auth.test;` with dkim, spf and dmarc pass,
    first after cleanup's Received header; an incoming A-R with our authserv-id is removed,
    one with another id is kept;
  * fail / none: a broken signature and a softfail SPF (p=none: accepted, dmarc=fail), a
    domain publishing nothing (spf=none, dmarc=none);
  * `reject_spf_fail` at RCPT (550 5.7.23), `p=reject` at end of data (550 5.7.1 rejected
    by DMARC policy for D, OpenDMARC's words), `p=quarantine` held (`postqueue -p` shows
    `!`); the mynetworks client is exempt (no header, no disposition);
  * temperror (SERVFAIL): accepted with spf=temperror; with
    `smtpd_auth_temperror_action = defer` (after a reload) 451 4.4.3, never a 5xx.

Needs dkimpy (python3-dkim) under /usr/bin/python3 for the signed case (skipped without).
One instance for the whole file; every wait is bounded.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import smtplib
import time

import pytest

from dnsserver import DnsServer
from postern import Instance, ensure_user
from test_auth_cmd import sys_python, txt_of_zone_line
from test_smtpd import wait_port

AUTHORISED = "127.0.0.2"
STRANGER = "127.0.0.3"
ID = "mx.auth.test"


def zone() -> dict:
    return {
        ("example.com", "TXT"): [f"v=spf1 ip4:{AUTHORISED} -all"],
        ("_dmarc.example.com", "TXT"): ["v=DMARC1; p=reject; rua=mailto:dmarc@example.com"],
        ("soft.test", "TXT"): [f"v=spf1 ip4:{AUTHORISED} ~all"],
        ("_dmarc.soft.test", "TXT"): ["v=DMARC1; p=none"],
        ("relay.test", "TXT"): [f"v=spf1 ip4:{AUTHORISED} ip4:{STRANGER} -all"],
        ("quar.test", "TXT"): ["v=spf1 -all"],
        ("_dmarc.quar.test", "TXT"): ["v=DMARC1; p=quarantine"],
        ("broken.test", "TXT"): DnsServer.SERVFAIL,
        ("_dmarc.broken.test", "TXT"): DnsServer.SERVFAIL,
        ("none.test", "A"): ["192.0.2.7"],
    }


@pytest.fixture(scope="module")
def env(postern_bin):
    """(instance, dns server, key path): one started instance for the file."""
    srv = DnsServer(zone())
    port = srv.__enter__()
    user = ensure_user() if os.geteuid() == 0 else None
    inst = Instance.create(postern_bin, user=user)
    try:
        keydir = inst.base / "keys"
        keydir.mkdir()
        if user is not None:
            os.chown(keydir, user.pw_uid, user.pw_gid)
        r = inst.run_raw(["dkim", "keygen", "-b", "2048", "-s", "sel", "-d", "example.com", "-D", str(keydir)])
        srv.zone[("sel._domainkey.example.com", "TXT")] = [txt_of_zone_line(r.stdout.decode())]
        (keydir / "sel.private").chmod(0o644)
        inst.run("postconf", "-e",
                 f"dns_servers = 127.0.0.1:{port}", f"myhostname = {ID}", "mynetworks = 127.0.0.1/32",
                 "smtpd_authentication_checks = spf, dkim, arc, dmarc", "smtpd_dmarc_policy = yes",
                 "dmarc_reporting = yes", f"dmarc_report_directory = {inst.base}/dmarc",
                 "smtpd_recipient_restrictions = permit_mynetworks, reject_spf_fail, reject_unauth_destination")
        inst.start()
        wait_port(inst.port)
        yield inst, srv, keydir / "sel.private"
    finally:
        inst.close()
        srv.close()


def body(from_: str, subject: str, extra: str = "") -> bytes:
    return (f"{extra}From: <{from_}>\nTo: <rcpt@localhost>\nSubject: {subject}\n"
            f"Message-ID: <{subject}@test>\n\nHello,\nthis is {subject}.\n").encode()


def send(inst, source: str, sender: str, msg: bytes, rcpt: str = "rcpt@localhost"):
    """Sends one message from `source`; returns None or the refusal (code, text)."""
    with smtplib.SMTP("127.0.0.1", inst.port, local_hostname="client.test", timeout=20,
                      source_address=(source, 0)) as c:
        try:
            c.sendmail(sender, [rcpt], msg)
        except smtplib.SMTPRecipientsRefused as e:
            return e.recipients[rcpt]
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode()
    return None


def delivered(inst, subject: str) -> email.message.Message:
    """The delivered message with this subject (waits at most 30 s)."""
    def find():
        for p in inst.new_messages("rcpt"):
            m = email.message_from_bytes(p.read_bytes(), policy=email.policy.compat32)
            if m["Subject"] == subject:
                return m
        return None
    return inst.wait_for(find, what=f"message {subject!r} delivered")


def dmarc_records(inst) -> list[dict]:
    """The DMARC report records smtpd wrote (one JSON object per line)."""
    d = inst.base / "dmarc"
    if not d.is_dir():
        return []
    return [json.loads(line) for f in sorted(d.iterdir()) for line in f.read_text().splitlines() if line]


def our_ar(m) -> list[str]:
    return [" ".join(v.split()) for v in m.get_all("Authentication-Results") or [] if v.strip().startswith(ID)]


def test_pass_signed_and_forged_header_removed(env):
    inst, srv, key = env
    raw = body("alice@example.com", "pass",
               extra=f"Authentication-Results: {ID}; dkim=pass header.d=forged.test\n"
                     "Authentication-Results: other.example; spf=pass\n")
    script = ("import dkim, sys\n"
              "raw = sys.stdin.buffer.read()\n"
              f"key = open({str(key)!r}, 'rb').read()\n"
              "sig = dkim.sign(raw, b'sel', b'example.com', key, include_headers=[b'from', b'to', b'subject'])\n"
              "sys.stdout.buffer.write(sig + raw)\n")
    signed = sys_python(script, raw).encode()
    assert send(inst, AUTHORISED, "alice@example.com", signed) is None
    m = delivered(inst, "pass")
    ar = our_ar(m)
    assert len(ar) == 1, m.get_all("Authentication-Results")
    assert "dkim=pass" in ar[0] and "header.i=@example.com header.s=sel" in ar[0], ar
    assert "spf=pass" in ar[0] and "smtp.mailfrom=alice@example.com" in ar[0], ar
    assert "dmarc=pass" in ar[0] and "header.from=example.com" in ar[0], ar
    assert "forged.test" not in str(m), "the forged A-R with our id must be gone"
    assert any(v.strip().startswith("other.example") for v in m.get_all("Authentication-Results")), m
    # Ours comes first after cleanup's Received header.
    names = [k.lower() for k in m.keys()]
    assert names.index("authentication-results") == names.index("received") + 1, names
    assert m.get_all("Authentication-Results")[0].strip().startswith(ID)
    # dmarc_reporting = yes: one record for the aggregate report (example.com has rua=).
    recs = [r for r in dmarc_records(inst) if r.get("hfrom") == "example.com"]
    assert len(recs) == 1, dmarc_records(inst)
    r = recs[0]
    assert (r["ip"], r["domain"], r["p"], r["disp"], r["rua"]) == \
        ("127.0.0.2", "example.com", "reject", "none", ["mailto:dmarc@example.com"]), r
    assert r["dkim"] == [["example.com", "sel", "pass"]] and r["spf"] == ["example.com", "mfrom", "pass"], r
    assert r["dkim_al"] and r["spf_al"], r


def test_fail_and_none_accepted(env):
    inst, srv, _ = env
    # A signature whose key is gone and an SPF softfail; p=none: accepted, dmarc=fail.
    raw = body("bob@soft.test", "softfail",
               extra="DKIM-Signature: v=1; a=rsa-sha256; d=soft.test; s=gone; h=from; bh=AAAA; b=AAAA\n")
    assert send(inst, STRANGER, "bob@soft.test", raw) is None
    ar = our_ar(delivered(inst, "softfail"))
    assert len(ar) == 1 and "spf=softfail" in ar[0] and "dmarc=fail" in ar[0], ar
    assert "dkim=pass" not in ar[0] and "dkim=" in ar[0], ar
    # A domain publishing nothing.
    assert send(inst, STRANGER, "carol@none.test", body("carol@none.test", "none")) is None
    ar = our_ar(delivered(inst, "none"))
    assert len(ar) == 1 and "spf=none" in ar[0] and "dmarc=" not in ar[0].replace("dmarc=none", ""), ar


def test_reject_spf_fail_at_rcpt(env):
    inst, srv, _ = env
    r = send(inst, STRANGER, "alice@example.com", body("alice@example.com", "spffail"))
    assert r is not None and r[0] == 550, r
    text = r[1].decode() if isinstance(r[1], bytes) else r[1]
    assert text.startswith("5.7.23 <rcpt@localhost>: Recipient address rejected: "
                           "Message rejected due to: SPF fail - not authorized."), text
    assert "reject: RCPT from unknown[127.0.0.3]: 550 5.7.23" in inst.log()


def test_dmarc_reject_and_quarantine(env):
    inst, srv, _ = env
    # SPF passes for relay.test, but nothing aligns with From: example.com (p=reject).
    r = send(inst, STRANGER, "list@relay.test", body("alice@example.com", "dmarcreject"))
    assert r == (550, "5.7.1 rejected by DMARC policy for example.com"), r
    assert "reject: END-OF-MESSAGE from unknown[127.0.0.3]: 550 5.7.1 rejected by DMARC policy " \
           "for example.com" in inst.log()
    recs = [r for r in dmarc_records(inst) if r["ip"] == "127.0.0.3" and r["hfrom"] == "example.com"]
    assert len(recs) == 1 and recs[0]["disp"] == "reject" and not recs[0]["spf_al"], dmarc_records(inst)
    # p=quarantine: held.
    assert send(inst, STRANGER, "list@relay.test", body("dave@quar.test", "quarantine")) is None
    inst.wait_for(lambda: "!" in inst.postqueue_p(), what="a held message in postqueue -p")
    assert "quarantined by DMARC policy for quar.test" in inst.log()
    held = [line for line in inst.postqueue_p().splitlines() if "!" in line]
    assert len(held) == 1 and "list@relay.test" in held[0], held
    inst.run("postsuper", "-d", "ALL")


def test_mynetworks_exempt(env):
    inst, srv, _ = env
    # 127.0.0.1 is mynetworks: no SPF word, no checks, no header, no DMARC disposition.
    assert send(inst, "127.0.0.1", "alice@example.com", body("alice@example.com", "trusted")) is None
    assert our_ar(delivered(inst, "trusted")) == []


def test_temperror_accept_then_defer(env):
    inst, srv, _ = env
    assert send(inst, STRANGER, "erin@broken.test", body("erin@broken.test", "tempaccept")) is None
    ar = our_ar(delivered(inst, "tempaccept"))
    assert len(ar) == 1 and "spf=temperror" in ar[0], ar
    inst.run("postconf", "-e", "smtpd_auth_temperror_action = defer")
    inst.reload()
    deadline = time.monotonic() + 20
    while True:  # the reload replaces smtpd processes: the first session may be an old one
        r = send(inst, STRANGER, "erin@broken.test", body("erin@broken.test", "tempdefer"))
        if r is not None or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert r is not None and r[0] == 451 and r[1].startswith("4.4.3 "), r
    inst.run("postconf", "-e", "smtpd_auth_temperror_action = accept")
    inst.reload()
