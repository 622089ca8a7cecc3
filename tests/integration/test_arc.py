"""test_arc.py -- cleanup's ARC sealing (RFC 8617, issue 15) of mail this server forwards,
through a real instance: an alias (`fwd` -> u@remote.example) makes local(8) re-inject the
message, cleanup seals it (`arc_sealing = yes`, `arc_seal_key` in `dkim_key_table`) and the
relay delivers it to a capturing SMTP peer (test_smtp_client.Peer). Independent verifiers
check the result: dkimpy's `arc_verify`/`verify` (python3-dkim, Debian's python3) and the
npm `mailauth` CLI (`mailauth report --dns-cache`: no DNS at all).

* test_forwarded_message_sealed: a message DKIM-signed by `postern auth sign` and
  forwarded through the alias gets one ARC set (i=1, cv=none, AAR with our authserv-id and
  dkim=pass) first in its header; dkimpy and mailauth both say the chain passes and the
  author's DKIM signature still verifies; mail relayed directly (not forwarded) is not
  sealed (`arc_sealing_clients = local_forward`, the default).
* test_two_hops_cv_pass: a message ARC-sealed by dkimpy at a first hop arrives, is
  forwarded and sealed again: i=2, cv=pass, the chain verifies with dkimpy and mailauth
  (cleanup verified the first set through the loopback DNS server, `dns_servers`); a chain
  broken before it arrived is passed on unsealed with a log line.
* test_missing_key_defers: `arc_seal_key` naming no key defers the forwarded message
  (fail closed) with a warning, nothing reaches the peer.

mailauth: found as `mailauth` on PATH, or under $POSTERN_MAILAUTH_DIR (default
/opt/postern-test/mailauth, where .ci/run runs `npm install --prefix DIR mailauth@4.13.3`,
the last release for Node 20); missing = its checks are skipped, dkimpy's still run.
Every wait is bounded; the DNS server and peer threads end with the test, the instance
is killed by PID by the harness.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import smtplib
import subprocess
from contextlib import closing
from pathlib import Path

import pytest

from dnsserver import DnsServer
from postern import MAX_WAIT
from test_auth_cmd import sys_python, txt_of_zone_line
from test_smtp_client import Peer, postconf

AUTHSERV = "mx.arc.test"
MSG = (b"From: Alice <alice@example.com>\r\nTo: fwd@localhost\r\nSubject: SUBJ\r\n"
       b"Date: Sun, 06 Dec 2026 09:00:00 +0000\r\nMessage-ID: <SUBJ@example.com>\r\n\r\n"
       b"Hello,\r\n\r\n  spaced   body\t line.\r\n")


def mailauth_bin() -> str | None:
    found = shutil.which("mailauth")
    if found:
        return found
    d = Path(os.environ.get("POSTERN_MAILAUTH_DIR", "/opt/postern-test/mailauth"))
    b = d / "node_modules" / ".bin" / "mailauth"
    return str(b) if b.exists() and shutil.which("node") else None


def keygen(inst, d: Path, sel: str, domain: str) -> tuple[Path, str]:
    inst.run("dkim", "keygen", "-b", "2048", "-s", sel, "-d", domain, "-D", str(d))
    key = d / f"{sel}.private"
    if inst.user is not None:
        os.chown(key, inst.user.pw_uid, inst.user.pw_gid)
    return key, txt_of_zone_line((d / f"{sel}.txt").read_text())


def setup(inst, peer: Peer, zone: dict, dns_port: int, *extra: str) -> dict:
    """Keys (seal: arc.forwarder.test, author: krsa.example.com, first hop:
    hop1.first.example), published in `zone`; the instance relays to `peer`."""
    d = inst.root / "arc"
    d.mkdir()
    if inst.user is not None:
        os.chown(d, inst.user.pw_uid, inst.user.pw_gid)
    keys = {"arc": keygen(inst, d, "arc", "forwarder.test") + ("forwarder.test",),
            "krsa": keygen(inst, d, "krsa", "example.com") + ("example.com",),
            "hop1": keygen(inst, d, "hop1", "first.example") + ("first.example",)}
    for sel, (_, txt, dom) in keys.items():
        zone[(f"{sel}._domainkey.{dom}", "TXT")] = [[txt[i:i + 250] for i in range(0, len(txt), 250)]]
    (d / "keys").write_text(f"seal forwarder.test:arc:{keys['arc'][0]}\n")
    postconf(inst, f"relayhost = [127.0.0.1]:{peer.port}", "mynetworks = 127.0.0.1/32",
             "relay_domains = remote.example", f"myhostname = {AUTHSERV}",
             f"dns_servers = 127.0.0.1:{dns_port}", "alias_maps = inline:{ fwd=u@remote.example }",
             f"dkim_key_table = texthash:{d}/keys", "arc_sealing = yes", "arc_seal_key = seal",
             *extra)
    return keys


def send(inst, msg: bytes, rcpt: str = "fwd@localhost") -> None:
    with smtplib.SMTP("127.0.0.1", inst.port, local_hostname="client.example",
                      timeout=MAX_WAIT) as c:
        c.sendmail("alice@example.com", [rcpt], msg)


def received(inst, peer: Peer, count: int) -> dict[str, bytes]:
    """The peer's messages by Subject, CRLF line ends as on the wire (waits for `count`)."""
    inst.wait_for(lambda: len(peer.messages) >= count, what=f"{count} messages at the peer")
    out = {}
    for _, data in peer.messages:
        raw = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        out[re.search(rb"(?m)^Subject: (\S+)", raw).group(1).decode()] = raw
    return out


def records(keys: dict) -> dict[str, str]:
    return {f"{sel}._domainkey.{dom}": txt for sel, (_, txt, dom) in keys.items()}


def dkimpy(raw: bytes, keys: dict) -> dict:
    """dkimpy's ARC verdict (cv, per-set results) and DKIM verdict of `raw`."""
    script = (
        "import sys, json, dkim\n"
        f"recs = json.loads({json.dumps(json.dumps(records(keys)))})\n"
        "def txt(name, timeout=5):\n"
        "    n = name.decode() if isinstance(name, bytes) else name\n"
        "    v = recs.get(n.rstrip('.'))\n"
        "    return v.encode() if v else None\n"
        "raw = sys.stdin.buffer.read()\n"
        "cv, results, why = dkim.arc_verify(raw, dnsfunc=txt)\n"
        "ok = dkim.DKIM(raw).verify(dnsfunc=txt)\n"
        "print(json.dumps({'cv': cv.decode(), 'why': why, 'n': len(results), 'dkim': bool(ok)}))\n")
    return json.loads(sys_python(script, raw))


def mailauth(raw: bytes, keys: dict, tmp: Path) -> dict | None:
    """mailauth's report of `raw` (DNS answers from a cache file only), or None if missing."""
    exe = mailauth_bin()
    if exe is None:
        return None
    cache = {name: {"TXT": [[txt[i:i + 250] for i in range(0, len(txt), 250)]]}
             for name, txt in records(keys).items()}
    (tmp / "dns.json").write_text(json.dumps(cache))
    (tmp / "msg.eml").write_bytes(raw)
    r = subprocess.run([exe, "report", "--dns-cache", str(tmp / "dns.json"), "-i", "192.0.2.10",
                        "-e", "client.example", "-f", "alice@example.com", "-m", "verify.test",
                        str(tmp / "msg.eml")], capture_output=True, timeout=MAX_WAIT)
    assert r.returncode == 0, r
    return json.loads(r.stdout)


def arc_sets(raw: bytes) -> list[str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    return [h for h in re.split(r"\r\n(?=\S)", head) if h.lower().startswith("arc-")]


def test_forwarded_message_sealed(instance, tmp_path):
    zone: dict = {}
    with DnsServer(zone) as port, closing(Peer()) as peer:
        keys = setup(instance, peer, zone, port)
        instance.start()
        signed = instance.run("auth", "sign", "-s", "krsa", "-d", "example.com", "-k",
                              str(keys["krsa"][0]), input=MSG.replace(b"SUBJ", b"forwarded")).stdout
        send(instance, signed)
        send(instance, MSG.replace(b"SUBJ", b"direct"), rcpt="u@remote.example")
        got = received(instance, peer, 2)
    raw = got["forwarded"]
    sets = arc_sets(raw)
    assert [s.split(":")[0] for s in sets] == \
        ["ARC-Seal", "ARC-Message-Signature", "ARC-Authentication-Results"], raw.decode()[:3000]
    assert raw.startswith(b"ARC-Seal: i=1; a=rsa-sha256;"), raw[:300]
    assert "cv=none" in sets[0] and "d=forwarder.test" in sets[0] and "s=arc" in sets[0]
    aar = re.sub(r"\s+", " ", sets[2])
    assert aar.startswith(f"ARC-Authentication-Results: i=1; {AUTHSERV};"), aar
    assert "dkim=pass" in aar and "header.d=example.com" in aar, aar
    assert not arc_sets(got["direct"]), got["direct"].decode()[:800]
    v = dkimpy(raw, keys)
    assert v["cv"] == "pass" and v["n"] == 1 and v["dkim"], v
    report = mailauth(raw, keys, tmp_path)
    if report is not None:
        assert report["arc"]["status"]["result"] == "pass", report["arc"]
        assert [r["status"]["result"] for r in report["dkim"]["results"]] == ["pass"], report["dkim"]


def test_two_hops_cv_pass(instance, tmp_path):
    zone: dict = {}
    with DnsServer(zone) as port, closing(Peer()) as peer:
        keys = setup(instance, peer, zone, port)
        instance.start()
        pem = keys["hop1"][0].read_bytes()
        script = (
            "import sys, dkim\n"
            "raw = b'Authentication-Results: first.example; spf=pass smtp.mailfrom=alice@example.com\\r\\n'"
            " + sys.stdin.buffer.read()\n"
            f"sig = dkim.arc_sign(raw, b'hop1', b'first.example', {pem!r}, b'first.example')\n"
            "sys.stdout.buffer.write(b''.join(sig) + raw)\n")
        hop1 = sys_python(script, MSG.replace(b"SUBJ", b"twohops")).encode()
        assert hop1.count(b"ARC-Seal: i=1;") == 1, hop1[:800]
        send(instance, hop1)
        broken = sys_python(script, MSG.replace(b"SUBJ", b"broken")).encode()
        send(instance, broken.replace(b"spaced   body", b"changed body"))
        got = received(instance, peer, 2)
        instance.wait_for(lambda: "not ARC-sealed: ARC chain failed" in instance.log(),
                          what="the broken chain logged")
    raw = got["twohops"]
    assert raw.startswith(b"ARC-Seal: i=2; a=rsa-sha256;"), raw[:300]
    seal2 = arc_sets(raw)[0]
    assert "cv=pass" in seal2 and "d=forwarder.test" in seal2, seal2
    assert b"ARC-Authentication-Results: i=2; " + AUTHSERV.encode() in raw
    assert re.search(rb"arc=pass", raw.split(b"ARC-Authentication-Results: i=2;")[1][:400]), raw[:2000]
    v = dkimpy(raw, keys)
    assert v["cv"] == "pass" and v["n"] == 2, v
    report = mailauth(raw, keys, tmp_path)
    if report is not None:
        assert report["arc"]["status"]["result"] == "pass", report["arc"]
        assert report["arc"]["i"] == 2, report["arc"]
    # the broken chain went on as it was: no set of ours
    assert b"d=forwarder.test" not in got["broken"], got["broken"][:2000]
    assert got["broken"].count(b"ARC-Seal:") == 1


def test_missing_key_defers(instance):
    zone: dict = {}
    with DnsServer(zone) as port, closing(Peer()) as peer:
        setup(instance, peer, zone, port, "arc_seal_key = nosuchkey")
        instance.start()
        send(instance, MSG.replace(b"SUBJ", b"nokey"))
        instance.wait_for(lambda: "ARC sealing: arc_seal_key nosuchkey is not in dkim_key_table"
                          in instance.log(), what="warning logged")
        instance.wait_for(lambda: "status=deferred" in instance.log(), what="forward deferred")
        assert not peer.messages
