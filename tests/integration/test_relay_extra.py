"""Relay extras (issue 4): Dovecot's LMTP server as a real peer (unix: and
inet:), smtp_address_preference / inet_protocols against a loopback DNS
server with A and AAAA records, the fast flush service (postqueue -s,
postqueue -i, ETRN), in_flow_delay, qmgr_message_active_limit and fair round
robin between destinations.

Every peer listens on loopback only, on a free port; every process a test
starts is stopped by PID.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from dnsserver import DnsServer
from postern import TEST_USER, free_port
from test_smtp_client import Sink, postconf, wait_port, wait_queue_empty

MSG = b"From: snd@localhost\nSubject: relay extra\n\nhello\n"


def sent_lines(inst) -> list[str]:
    return [l for l in inst.log().splitlines() if "status=sent" in l]


# --------------------------------------------------------------------------- Dovecot LMTP

class Dovecot:
    """A private Dovecot with only LMTP (one unix and one inet listener) and a
    passwd-file userdb listing `users`; mail goes to Maildirs under its temp
    dir. Run in the foreground (-F) as our child, stopped by PID."""

    def __init__(self, users: list[str]):
        owner = pwd.getpwnam(TEST_USER) if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
        self.dir = Path(tempfile.mkdtemp(prefix="postern-dovecot-"))
        self.dir.chmod(0o755)
        for sub in ("run", "state", "mail"):
            (self.dir / sub).mkdir()
        (self.dir / "run").chmod(0o755)
        os.chown(self.dir / "mail", owner.pw_uid, owner.pw_gid)
        self.port = free_port()
        self.socket = self.dir / "run" / "lmtp-postern"
        users_file = self.dir / "users"
        users_file.write_text("".join(
            f"{u}::{owner.pw_uid}:{owner.pw_gid}::{self.dir}/mail/{u}::\n" for u in users))
        self.conf = self.dir / "dovecot.conf"
        self.conf.write_text(f"""
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.dir}/dovecot.log
protocols = lmtp
listen = 127.0.0.1
ssl = no
mail_location = maildir:{self.dir}/mail/%u/Maildir
first_valid_uid = {min(owner.pw_uid, 1)}
passdb {{
  driver = passwd-file
  args = {users_file}
}}
userdb {{
  driver = passwd-file
  args = {users_file}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.port}
  }}
  unix_listener lmtp-postern {{
    mode = 0666
  }}
}}
service anvil {{
  chroot =
}}
lmtp_save_to_detail_mailbox = no
""")
        self.p = subprocess.Popen(["dovecot", "-F", "-c", str(self.conf)], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        deadline = time.monotonic() + 10
        while not self.socket.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.socket.exists(), self.log()

    def log(self) -> str:
        try:
            return (self.dir / "dovecot.log").read_text(errors="replace")
        except OSError:
            return ""

    def subjects(self, user: str) -> list[str]:
        r = subprocess.run(["doveadm", "-c", str(self.conf), "fetch", "-u", user, "hdr.subject",
                            "mailbox", "INBOX", "all"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr + self.log()
        return [l.split(":", 1)[1].strip() for l in r.stdout.splitlines() if l.lower().startswith("hdr.subject:")]

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def dovecot():
    if shutil.which("dovecot") is None or shutil.which("doveadm") is None:
        pytest.skip("dovecot/doveadm not installed")
    if not Path("/usr/lib/dovecot/lmtp").exists():
        pytest.skip("dovecot-lmtpd not installed")
    if os.geteuid() != 0:
        pytest.skip("a private dovecot needs root here")
    d = Dovecot(["dave@lmtp.test", "erin@lmtp.test"])
    yield d
    d.close()


@pytest.mark.parametrize("how", ["unix", "inet"])
def test_lmtp_to_dovecot(instance, dovecot, how):
    """Three recipients in one LMTP transaction: Dovecot stores two and
    refuses the unknown one at RCPT; only that one bounces."""
    nexthop = f"unix:{dovecot.socket}" if how == "unix" else f"inet:127.0.0.1:{dovecot.port}"
    postconf(instance, f"default_transport = lmtp:{nexthop}")
    instance.start()
    msg = f"From: snd@localhost\nSubject: dovecot {how}\n\nbody\n".encode()
    instance.sendmail(["-f", "snd@localhost", "dave@lmtp.test", "erin@lmtp.test", "nobody@lmtp.test"], msg)
    instance.wait_for_mail("snd")  # the bounce for nobody@
    wait_queue_empty(instance)
    assert dovecot.subjects("dave@lmtp.test") == [f"dovecot {how}"]
    assert dovecot.subjects("erin@lmtp.test") == [f"dovecot {how}"]
    log = instance.log()
    sent = [l for l in sent_lines(instance) if "/lmtp[" in l]
    assert len(sent) == 2, log
    # Postfix names a UNIX-socket peer myhostname[path].
    myhostname = instance.run("postconf", "-h", "myhostname").stdout.decode().strip()
    relay = (f"relay={myhostname}[{dovecot.socket}]," if how == "unix"
             else f"relay=127.0.0.1[127.0.0.1]:{dovecot.port},")
    assert all(relay in l for l in sent), sent
    bounced = [l for l in log.splitlines() if "status=bounced" in l]
    assert len(bounced) == 1 and "to=<nobody@lmtp.test>" in bounced[0], log
    assert "dsn=5.1.1" in bounced[0], bounced[0]
    dsn = instance.new_messages("snd")[0].read_text(errors="replace")
    assert "nobody@lmtp.test" in dsn and "dave@lmtp.test" not in dsn.split("Content-Type: message/rfc822")[0]


# --------------------------------------------------------------------------- address families

def _dual_zone() -> dict:
    return {("dual.test", "MX"): [(10, "mx.dual.test")],
            ("mx.dual.test", "A"): ["127.0.0.1"],
            ("mx.dual.test", "AAAA"): ["::1"]}


def _ipv6_ok() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_ok(), reason="no IPv6 loopback")
@pytest.mark.parametrize("settings,family,asked", [
    (["inet_protocols = ipv4"], "v4", {"A"}),
    (["inet_protocols = ipv6"], "v6", {"AAAA"}),
    (["inet_protocols = all", "smtp_address_preference = ipv6"], "v6", {"A", "AAAA"}),
    (["inet_protocols = all", "smtp_address_preference = ipv4"], "v4", {"A", "AAAA"}),
])
def test_address_family_selection(instance, settings, family, asked):
    """One MX host with A 127.0.0.1 and AAAA ::1, a sink on each: the family
    used follows inet_protocols and smtp_address_preference, and only the
    enabled families are looked up."""
    port = free_port()
    dns = DnsServer(_dual_zone())
    with dns as dport, Sink(port), Sink6(port):
        postconf(instance, f"dns_servers = 127.0.0.1:{dport}", f"relayhost = dual.test:{port}", *settings)
        if "inet_protocols = ipv6" in settings:
            # master binds only the families inet_protocols enables.
            mcf = instance.root / "master.cf"
            mcf.write_text(mcf.read_text().replace(instance.listen, f"[::1]:{instance.port}"))
        instance.start()
        for i in range(3):
            instance.sendmail(["-f", "snd@localhost", f"u{i}@remote.example"], MSG)
        instance.wait_for(lambda: len(sent_lines(instance)) >= 3, what="3 x status=sent")
        wait_queue_empty(instance)
        types = {t for n, t in dns.queries if n.lower().rstrip(".") == "mx.dual.test"}
    want = f"relay=mx.dual.test[{'::1' if family == 'v6' else '127.0.0.1'}]:{port}"
    assert all(want in l for l in sent_lines(instance)), sent_lines(instance)
    assert types == asked, types


@pytest.mark.skipif(not _ipv6_ok(), reason="no IPv6 loopback")
def test_preferred_family_down_falls_back_to_other(instance):
    """smtp_address_preference = ipv6 with nothing listening on ::1: the
    client tries ::1, then delivers over 127.0.0.1."""
    port = free_port()
    with DnsServer(_dual_zone()) as dport, Sink(port):
        postconf(instance, f"dns_servers = 127.0.0.1:{dport}", f"relayhost = dual.test:{port}",
                 "smtp_address_preference = ipv6")
        instance.start()
        instance.sendmail(["-f", "snd@localhost", "u@remote.example"], MSG)
        instance.wait_for(lambda: sent_lines(instance), what="status=sent")
        wait_queue_empty(instance)
    log = instance.log()
    assert f"connect to mx.dual.test[::1]:{port}: Connection refused" in log, log
    assert f"relay=mx.dual.test[127.0.0.1]:{port}" in sent_lines(instance)[0]


class Sink6(Sink):
    """smtp-sink on [::1]:PORT."""

    def __init__(self, port: int, *flags: str):
        argv = ["smtp-sink"]
        if os.geteuid() == 0:
            argv += ["-u", TEST_USER]
        argv += [*flags, f"[::1]:{port}", "100"]
        self.port = port
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("::1", port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"nothing listens on [::1]:{port}")


# --------------------------------------------------------------------------- fast flush

def deferred_ids(inst) -> list[str]:
    return sorted(p.name for p in inst.queue_files() if "/deferred/" in str(p))


def queue_id_of(inst, rcpt: str) -> str:
    for l in inst.log().splitlines():
        if f"to=<{rcpt}>" in l and "status=deferred" in l:
            return l.split(": ", 1)[1].split(":", 1)[0].strip()
    raise AssertionError(f"no deferral for {rcpt}\n{inst.log()}")


def etrn(port: int, arg: str) -> tuple[int, str]:
    import smtplib
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.ehlo("client.test")
        code, text = s.docmd("ETRN", arg) if arg else s.docmd("ETRN")
        return code, text.decode()


def test_fast_flush_per_site_postqueue_s_and_etrn(instance):
    """Mail for two relay_domains sites is deferred (nothing listens). The
    flush service logs each message under its site; `postqueue -s a.test`
    delivers only a.test's mail, ETRN b.test the other (past the dead
    destination), an ineligible site gets Postfix's 459."""
    pa, pb = free_port(), free_port()
    postconf(instance, "relay_domains = a.test b.test",
             f"transport_maps = inline:{{a.test=relay:[127.0.0.1]:{pa}, b.test=relay:[127.0.0.1]:{pb}}}",
             "minimal_backoff_time = 300s", "maximal_backoff_time = 4000s")
    instance.start()
    instance.sendmail(["-f", "snd@localhost", "u@a.test"], MSG)
    instance.sendmail(["-f", "snd@localhost", "v@b.test"], MSG)
    instance.wait_for(lambda: len(deferred_ids(instance)) == 2, what="2 messages in deferred/")
    ida, idb = queue_id_of(instance, "u@a.test"), queue_id_of(instance, "v@b.test")
    flushdir = instance.root / "queue" / "flush"
    instance.wait_for(lambda: (flushdir / "a_test").exists() and ida in (flushdir / "a_test").read_text(),
                      what="fast flush log for a.test")
    assert idb in (flushdir / "b_test").read_text()
    with Sink(pa):
        instance.run("postqueue", "-s", "a.test")
        instance.wait_for(lambda: any("to=<u@a.test>" in l for l in sent_lines(instance)),
                          what="a.test delivered")
        instance.wait_for(lambda: deferred_ids(instance) == [idb], what="only b.test's mail left")
    assert (flushdir / "a_test").read_text() == "", "the log is truncated after a send"
    assert not any("to=<v@b.test>" in l for l in sent_lines(instance))
    with Sink(pb):
        assert etrn(instance.port, "b.test") == (250, "Queuing started")
        instance.wait_for(lambda: any("to=<v@b.test>" in l for l in sent_lines(instance)),
                          what="b.test delivered after ETRN")
        wait_queue_empty(instance)
    assert etrn(instance.port, "@a.test") == (250, "Queuing started")
    assert etrn(instance.port, "nope.test") == (459, "<nope.test>: service unavailable")
    assert etrn(instance.port, "#") == (501, "Error: invalid parameter syntax")
    assert etrn(instance.port, "")[0] == 500
    assert "warning: reject: ETRN nope.test... from " in instance.log()


def test_postqueue_i_and_ineligible_site(instance):
    port = free_port()
    postconf(instance, f"relayhost = [127.0.0.1]:{port}",
             "minimal_backoff_time = 300s", "maximal_backoff_time = 4000s")
    instance.start()
    instance.sendmail(["-f", "snd@localhost", "u@remote.example"], MSG)
    instance.sendmail(["-f", "snd@localhost", "w@remote.example"], MSG)
    instance.wait_for(lambda: len(deferred_ids(instance)) == 2, what="2 messages in deferred/")
    qid = queue_id_of(instance, "u@remote.example")
    with Sink(port):
        instance.run("postqueue", "-i", qid)
        instance.wait_for(lambda: any("to=<u@remote.example>" in l for l in sent_lines(instance)),
                          what="the one message delivered")
        instance.wait_for(lambda: len(deferred_ids(instance)) == 1, what="the other still deferred")
    assert not any("to=<w@remote.example>" in l for l in sent_lines(instance))
    # relay_domains (and so fast_flush_domains) is empty here.
    r = instance.run("postqueue", "-s", "remote.example", check=False)
    assert r.returncode == 69, r
    assert r.stderr.decode().strip() == \
        'postqueue: fatal: Flush service is not configured for destination "remote.example"'
    r = instance.run("postqueue", "-i", "NOSUCHID", check=False)
    assert r.returncode == 0, r


# --------------------------------------------------------------------------- qmgr limits, flow control

def qmgr_in_flight_max(log: str) -> int:
    """Most messages in qmgr's active queue at once, from qmgr's own lines."""
    n = peak = 0
    for l in log.splitlines():
        if "/qmgr[" not in l:
            continue
        if "(queue active)" in l:
            n += 1
            peak = max(peak, n)
        elif l.endswith(": removed"):
            n -= 1
    return peak


def test_active_limit_respected_and_backlog_drains(instance):
    """qmgr_message_active_limit = 2 with eight messages submitted while
    Postern is stopped: at most two are active at once, and the rest follow
    as room frees up, without waiting for another trigger."""
    port = free_port()
    postconf(instance, f"relayhost = [127.0.0.1]:{port}", "qmgr_message_active_limit = 2")
    for i in range(8):
        instance.sendmail(["-f", "snd@localhost", f"u{i}@remote.example"], MSG)
    with Sink(port, "-w", "1"):
        instance.start()
        instance.wait_for(lambda: len(sent_lines(instance)) >= 8, what="8 deliveries")
        wait_queue_empty(instance)
    assert qmgr_in_flight_max(instance.log()) == 2, instance.log()


def test_round_robin_slow_destination_does_not_starve_others(instance):
    """Two delivery slots (default_process_limit = 2), six messages for a slow
    destination queued first, then one for another: the other one is
    delivered before the slow destination's queue is done."""
    slow, fast = free_port(), free_port()
    postconf(instance, "default_process_limit = 2",
             f"transport_maps = inline:{{slow.test=smtp:[127.0.0.1]:{slow}, fast.test=smtp:[127.0.0.1]:{fast}}}")
    with Sink(slow, "-w", "1"), Sink(fast):
        instance.start()
        for i in range(6):
            instance.sendmail(["-f", "snd@localhost", f"s{i}@slow.test"], MSG)
        instance.sendmail(["-f", "snd@localhost", "f@fast.test"], MSG)
        instance.wait_for(lambda: len(sent_lines(instance)) >= 7, what="7 deliveries")
        wait_queue_empty(instance)
    sent = sent_lines(instance)
    fast_at = next(i for i, l in enumerate(sent) if "to=<f@fast.test>" in l)
    last_slow = max(i for i, l in enumerate(sent) if "@slow.test>" in l)
    assert fast_at < last_slow, "\n".join(sent)


def test_in_flow_delay_paces_receivers(instance):
    """Deliveries slower than arrivals with one active message at a time:
    qmgr hands out tokens only as it takes messages in, so cleanup has to
    wait for them (logged), and every message still gets through."""
    port = free_port()
    postconf(instance, f"relayhost = [127.0.0.1]:{port}", "qmgr_message_active_limit = 1",
             "default_process_limit = 2", "in_flow_delay = 1s")
    with Sink(port, "-w", "1"):
        instance.start()
        for i in range(5):
            instance.sendmail(["-f", "snd@localhost", f"u{i}@remote.example"], MSG)
        instance.wait_for(lambda: len(sent_lines(instance)) >= 5, what="5 deliveries")
        wait_queue_empty(instance)
    log = instance.log()
    assert "/cleanup[" in log and "flow control: waited" in log, log


def test_in_flow_delay_zero_never_waits(instance):
    port = free_port()
    postconf(instance, f"relayhost = [127.0.0.1]:{port}", "qmgr_message_active_limit = 1",
             "default_process_limit = 2", "in_flow_delay = 0")
    with Sink(port, "-w", "1"):
        instance.start()
        for i in range(4):
            instance.sendmail(["-f", "snd@localhost", f"u{i}@remote.example"], MSG)
        instance.wait_for(lambda: len(sent_lines(instance)) >= 4, what="4 deliveries")
    assert "flow control" not in instance.log()
