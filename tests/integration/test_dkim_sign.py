"""test_dkim_sign.py -- cleanup's built-in DKIM signing (issue 15) through a real instance
relaying to a capturing SMTP peer (test_smtp_client.Peer), checked by independent verifiers.

* test_signed_relay_verifies: two signatures per message (RSA and Ed25519, keys from
  `postern dkim keygen`, tables `texthash:`) on mail from a mynetworks client and on a local
  submission (sendmail); both verify with dkimpy and with OpenDKIM in verify mode
  (`opendkim -x CONF -t FILE`, `Mode v`, public keys from `TestDNSData`: OpenDKIM's own
  milter callbacks, no daemon and no DNS); a header a milter (milterd.py) inserted is covered
  (in h=, and changing it breaks the signature); mail from a client outside mynetworks
  (source 127.0.0.2, relayed because of relay_domains) and mail whose From is not in the
  signing table are not signed; the log has OpenDKIM's line per signature.
* test_key_rotation_without_restart: the key table names a new selector and key file, and
  the Ed25519 key file is replaced in place: the next message is signed with the new keys
  (verified with the new records), the master never restarted.
* test_unreadable_key_defers: a key name without a key defers the message (451 4.7.5), it
  is never sent unsigned.

dkimpy runs under Debian's python3 (test_auth_cmd.sys_python). Needs python3-dkim and
opendkim (skipped when missing). Every wait is bounded; the peer and milter threads end with
the test, the instance is killed by PID by the harness.
"""

from __future__ import annotations

import os
from contextlib import closing
import re
import shutil
import smtplib
import subprocess
from pathlib import Path

import pytest

from milterd import Milterd
from postern import MAX_WAIT
from test_auth_cmd import dkimpy_verify_all, txt_of_zone_line
from test_smtp_client import Peer, postconf

MSG = (b"From: Alice <alice@example.com>\r\nTo: u@remote.example\r\nSubject: SUBJ\r\n"
       b"Date: Sun, 06 Dec 2026 09:00:00 +0000\r\nMessage-ID: <SUBJ@example.com>\r\n\r\n"
       b"body line\r\n\r\n\r\n")


def keygen(inst, d: Path, kind: str, sel: str) -> tuple[Path, str]:
    """A key pair from `postern dkim keygen`: (private key path, TXT value)."""
    args = ["-t", "ed25519"] if kind == "ed25519" else ["-b", "1024"]
    inst.run("dkim", "keygen", *args, "-s", sel, "-d", "example.com", "-D", str(d))
    return d / f"{sel}.private", txt_of_zone_line((d / f"{sel}.txt").read_text())


def mkdir(inst, d: Path) -> Path:
    """A directory the instance's account owns (keygen runs as that account)."""
    d.mkdir()
    if inst.user is not None:
        os.chown(d, inst.user.pw_uid, inst.user.pw_gid)
    return d


def setup(inst, peer: Peer, *extra: str) -> dict[str, tuple[Path, str]]:
    d = mkdir(inst, inst.root / "dkim")
    keys = {"krsa": keygen(inst, d, "rsa", "krsa"), "ked": keygen(inst, d, "ed25519", "ked")}
    (d / "signing").write_text("example.com rsa, ed\n")
    (d / "keys").write_text(f"rsa example.com:krsa:{keys['krsa'][0]}\n"
                            f"ed example.com:ked:{keys['ked'][0]}\n")
    postconf(inst, f"relayhost = [127.0.0.1]:{peer.port}", "mynetworks = 127.0.0.1/32",
             "relay_domains = remote.example", f"dkim_signing_table = texthash:{d}/signing",
             f"dkim_key_table = texthash:{d}/keys", *extra)
    return keys


def send(inst, subject: str, source: str = "127.0.0.1", sender: str = "alice@example.com") -> None:
    with smtplib.SMTP("127.0.0.1", inst.port, local_hostname="client.example",
                      timeout=MAX_WAIT, source_address=(source, 0)) as c:
        msg = MSG.replace(b"SUBJ", subject.encode()).replace(b"alice@example.com", sender.encode())
        c.sendmail(sender, ["u@remote.example"], msg)


def received(inst, peer: Peer, count: int) -> dict[str, bytes]:
    """The peer's messages by Subject, LF line ends (waits for `count`)."""
    inst.wait_for(lambda: len(peer.messages) >= count, what=f"{count} messages at the peer")
    out = {}
    for _, data in peer.messages:
        raw = data.replace(b"\r\n", b"\n")
        out[re.search(rb"(?m)^Subject: (\S+)", raw).group(1).decode()] = raw
    return out


def signatures(raw: bytes) -> list[str]:
    head = raw.split(b"\n\n", 1)[0].decode()
    return [h for h in re.split(r"\n(?=\S)", head) if h.lower().startswith("dkim-signature:")]


def opendkim_results(raw: bytes, keys: dict, tmp: Path) -> str:
    """The Authentication-Results OpenDKIM (verify mode) writes for `raw`."""
    if shutil.which("opendkim") is None:
        pytest.skip("opendkim not installed")
    dns = tmp / "dns.txt"
    dns.write_text("".join(f"{s}._domainkey.example.com {txt}\n" for s, (_, txt) in keys.items()))
    conf = tmp / "opendkim.conf"
    conf.write_text(f"Mode v\nSyslog no\nAuthservID mx.verify.test\nTestDNSData file:{dns}\n")
    msg = tmp / "msg.eml"
    msg.write_bytes(raw)
    r = subprocess.run(["opendkim", "-x", str(conf), "-vvv", "-t", str(msg)], capture_output=True,
                       timeout=MAX_WAIT)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == 0, out
    m = re.search(r"hname='Authentication-Results' hvalue='([^']*)'", out)
    assert m, out
    return m.group(1)


def test_signed_relay_verifies(instance, tmp_path):
    add = {"on": {"eom": {"modify": [{"insert_header": [0, "Reply-To", "desk@example.com"]}]}}}
    with closing(Peer()) as peer, Milterd(add) as m:
        keys = setup(instance, peer, f"smtpd_milters = {m.endpoint}")
        instance.start()
        send(instance, "mynetworks")
        send(instance, "remote", source="127.0.0.2")
        send(instance, "unlisted", sender="bob@other.example")
        instance.sendmail(["-f", "alice@example.com", "u@remote.example"],
                          MSG.replace(b"SUBJ", b"local"))
        got = received(instance, peer, 4)
    for subject in ("mynetworks", "local"):
        raw = got[subject]
        sigs = signatures(raw)
        assert [re.search(r"a=([\w-]+);", s).group(1) for s in sigs] == \
            ["rsa-sha256", "ed25519-sha256"], raw.decode()[:2000]
        assert raw.startswith(b"DKIM-Signature: "), raw[:200]
        assert dkimpy_verify_all(raw, keys) == [True, True], subject
        ar = opendkim_results(raw, keys, tmp_path)
        assert ar.count("dkim=pass") == 2 and "header.s=krsa" in ar and "header.s=ked" in ar, ar
        assert "header.a=ed25519-sha256" in ar, ar
    # the milter's Reply-To is signed: in h=, and a changed value breaks both signatures
    raw = got["mynetworks"]
    assert b"Reply-To: desk@example.com" in raw
    assert all("reply-to" in re.sub(r"\s", "", s).lower().split("h=")[1].split(";")[0]
               for s in signatures(raw))
    forged = raw.replace(b"Reply-To: desk@", b"Reply-To: thief@")
    assert dkimpy_verify_all(forged, keys) == [False, False]
    # not mynetworks (not authenticated, not local), and a From not in the signing table
    for subject in ("remote", "unlisted"):
        assert not signatures(got[subject]), got[subject].decode()[:600]
    log = instance.log()
    assert log.count("DKIM-Signature field added (s=krsa, d=example.com)") == 2, log
    assert log.count("DKIM-Signature field added (s=ked, d=example.com)") == 2, log


def test_key_rotation_without_restart(instance, tmp_path):
    with closing(Peer()) as peer:
        keys = setup(instance, peer)
        instance.start()
        master = instance.master_pid()
        send(instance, "before")
        got = received(instance, peer, 1)
        assert dkimpy_verify_all(got["before"], keys) == [True, True]
        # rotation: a new RSA selector in the key table, the Ed25519 file replaced in place
        d = instance.root / "dkim"
        new = {"krsa2": keygen(instance, d, "rsa", "krsa2")}
        fresh = mkdir(instance, instance.root / "fresh")
        ed_path = keys["ked"][0]
        k, txt = keygen(instance, fresh, "ed25519", "ked")
        os.replace(k, ed_path)
        new["ked"] = (ed_path, txt)
        (d / "keys.new").write_text(f"rsa example.com:krsa2:{new['krsa2'][0]}\n"
                                    f"ed example.com:ked:{ed_path}\n")
        os.replace(d / "keys.new", d / "keys")
        send(instance, "after")
        got = received(instance, peer, 2)
        assert instance.master_pid() == master
    after = got["after"]
    assert [re.search(r"s=(\w+);", s).group(1) for s in signatures(after)] == ["krsa2", "ked"]
    assert dkimpy_verify_all(after, new) == [True, True]
    assert dkimpy_verify_all(after, keys)[1] is False  # the old Ed25519 key no longer signs
    assert opendkim_results(after, new, tmp_path).count("dkim=pass") == 2


def test_unreadable_key_defers(instance):
    with closing(Peer()) as peer:
        setup(instance, peer)
        d = instance.root / "dkim"
        (d / "keys").write_text(f"rsa example.com:krsa:{d}/missing.pem\n"
                                f"ed example.com:ked:{d}/ked.private\n")
        instance.start()
        with smtplib.SMTP("127.0.0.1", instance.port, timeout=MAX_WAIT) as c:
            c.ehlo("client.example")
            c.mail("alice@example.com")
            c.rcpt("u@remote.example")
            code, text = c.data(MSG.replace(b"SUBJ", b"nokey"))
        assert code == 451 and text.startswith(b"4.7.5"), (code, text)
        instance.wait_for(lambda: "DKIM signing: " in instance.log(), what="warning logged")
        assert not peer.messages
    assert "missing.pem" in instance.log()
