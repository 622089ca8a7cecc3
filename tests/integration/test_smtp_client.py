"""The smtp/lmtp delivery agent (issue 4) against real peers on loopback:
Postfix's smtp-sink, a scripted Python SMTP peer (per-recipient refusals), and
dnsserver.py for MX lookups. No test queries the machine's own resolver:
every instance that looks anything up sets dns_servers to the loopback server.
"""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

from dnsserver import DnsServer
from postern import TEST_USER, free_port

pytestmark = pytest.mark.skipif(shutil.which("smtp-sink") is None, reason="smtp-sink not installed")

MSG = b"From: snd@localhost\nSubject: relay test\n\nhello\n.leading dot\n"


def postconf(inst, *settings: str) -> None:
    inst.run("postconf", "-e", *settings)


def wait_queue_empty(inst, timeout: float = 30) -> None:
    inst.wait_for(lambda: not [p for p in inst.queue_files() if "/corrupt/" not in str(p)],
                  timeout=timeout, what="queue empty")


def wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


class Sink:
    """smtp-sink on a loopback port, stopped by PID."""

    def __init__(self, port: int, *flags: str):
        argv = ["smtp-sink"]
        if os.geteuid() == 0:
            argv += ["-u", TEST_USER]
        argv += [*flags, f"127.0.0.1:{port}", "100"]
        self.port = port
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        wait_port(port)

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=5)

    def __enter__(self) -> "Sink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Peer:
    """A scripted SMTP server: refuses RCPT for local parts starting with
    `bad` (550 5.1.1), accepts everything else; keeps the messages."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.messages: list[tuple[list[str], bytes]] = []
        self.transcript: list[str] = []
        self._stop = False
        self.t = threading.Thread(target=self._serve, daemon=True)
        self.t.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            with c:
                c.settimeout(10)
                try:
                    self._session(c.makefile("rwb"))
                except OSError:
                    pass

    def _session(self, f) -> None:
        def say(s: str) -> None:
            f.write(s.encode() + b"\r\n")
            f.flush()
        say("220 peer.test ESMTP")
        rcpts: list[str] = []
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line.decode(errors="replace").rstrip("\r\n")
            self.transcript.append(cmd)
            u = cmd.upper()
            if u.startswith("EHLO"):
                say("250-peer.test\r\n250-PIPELINING\r\n250-SIZE 10000000\r\n250 8BITMIME")
            elif u.startswith("MAIL"):
                rcpts = []
                say("250 2.1.0 Ok")
            elif u.startswith("RCPT"):
                addr = cmd[cmd.index("<") + 1:cmd.index(">")]
                if addr.startswith("bad"):
                    say(f"550 5.1.1 <{addr}>: Recipient address rejected: User unknown")
                else:
                    rcpts.append(addr)
                    say("250 2.1.5 Ok")
            elif u == "DATA":
                if not rcpts:
                    say("554 5.5.1 Error: no valid recipients")
                    continue
                say("354 go ahead")
                body = b""
                while (l := f.readline()) not in (b".\r\n", b""):
                    body += l
                self.messages.append((rcpts, body))
                say("250 2.0.0 Ok: queued as PEER1")
            elif u == "QUIT":
                say("221 2.0.0 Bye")
                return
            else:
                say("250 2.0.0 Ok")

    def close(self) -> None:
        self._stop = True
        self.t.join(timeout=5)
        self.sock.close()


def dsn_status(msg: email.message.Message) -> list[dict[str, str]]:
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            return [{k.lower(): v for k, v in block.items()} for block in part.get_payload()]
    raise AssertionError("no message/delivery-status part")


def test_relay_to_smtp_sink(instance):
    port = free_port()
    with Sink(port):
        postconf(instance, f"relayhost = [127.0.0.1]:{port}")
        instance.start()
        instance.sendmail(["-f", "snd@localhost", "u@remote.example"], MSG)
        instance.wait_for(lambda: "status=sent" in instance.log(), what="status=sent")
        wait_queue_empty(instance)
    line = next(l for l in instance.log().splitlines() if "status=sent" in l)
    assert "postfix/smtp[" in line or "/smtp[" in line, line
    assert "to=<u@remote.example>" in line, line
    assert f"relay=127.0.0.1[127.0.0.1]:{port}" in line, line
    assert "dsn=2.0.0, status=sent (250 2.0.0 Ok)" in line, line


def test_sink_down_deferred_then_flush(instance):
    port = free_port()
    postconf(instance, f"relayhost = [127.0.0.1]:{port}",
             "minimal_backoff_time = 300s", "maximal_backoff_time = 4000s")
    instance.start()
    instance.sendmail(["-f", "snd@localhost", "u@remote.example"], MSG)
    instance.wait_for(lambda: any("/deferred/" in str(p) for p in instance.queue_files()),
                      what="message in deferred/")
    log = instance.log()
    assert "relay=none" in log and "dsn=4.4.1, status=deferred" in log, log
    assert f"connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused" in log, log
    assert "status=sent" not in log
    with Sink(port):
        instance.run("postqueue", "-f")
        instance.wait_for(lambda: "status=sent" in instance.log(), what="status=sent after flush")
        wait_queue_empty(instance)


def test_one_recipient_refused_partial_bounce(instance):
    peer = Peer()
    try:
        postconf(instance, f"relayhost = [127.0.0.1]:{peer.port}")
        instance.start()
        instance.sendmail(["-f", "snd@localhost", "good@remote.example", "bad@remote.example"], MSG)
        instance.wait_for_mail("snd", 1)
        wait_queue_empty(instance)
    finally:
        peer.close()
    # The good recipient got exactly one copy, dot-stuffed on the wire.
    delivered = [r for r, _ in peer.messages]
    assert delivered.count(["good@remote.example"]) == 1, (delivered, peer.transcript)
    body = peer.messages[0][1]
    assert b"\r\n..leading dot\r\n" in body, body
    log = instance.log()
    assert "to=<good@remote.example>" in log and "status=sent (250 2.0.0 Ok: queued as PEER1)" in log, log
    bad = next(l for l in log.splitlines() if "to=<bad@remote.example>" in l and "status=" in l)
    assert "dsn=5.1.1, status=bounced (host 127.0.0.1[127.0.0.1] said: 550 5.1.1 " \
           "<bad@remote.example>: Recipient address rejected: User unknown " \
           "(in reply to RCPT TO command))" in bad, bad
    ndr = email.message_from_bytes(instance.new_messages("snd")[0].read_bytes(),
                                   policy=email.policy.compat32)
    groups = dsn_status(ndr)
    rcpt = [g for g in groups if "bad@remote.example" in g.get("final-recipient", "")]
    assert rcpt and rcpt[0]["status"] == "5.1.1" and rcpt[0]["action"] == "failed", groups
    assert not [g for g in groups if "good@remote.example" in g.get("final-recipient", "")], groups


def test_mx_lookup_then_port(instance):
    """transport_maps is not in qmgr's resolver yet: a non-bracketed relayhost
    `remote.test:PORT` makes the agent look up MX records, then use PORT."""
    port = free_port()
    zone = {("remote.test", "MX"): [(10, "mx.remote.test")],
            ("mx.remote.test", "A"): ["127.0.0.1"]}
    dns = DnsServer(zone)
    with dns as dport, Sink(port):
        postconf(instance, f"dns_servers = 127.0.0.1:{dport}", f"relayhost = remote.test:{port}")
        instance.start()
        instance.sendmail(["-f", "snd@localhost", "u@remote.example"], MSG)
        instance.wait_for(lambda: "status=sent" in instance.log(), what="status=sent")
        wait_queue_empty(instance)
        asked = {(n.lower().rstrip("."), t) for n, t in dns.queries}
    assert ("remote.test", "MX") in asked, asked
    line = next(l for l in instance.log().splitlines() if "status=sent" in l)
    assert f"relay=mx.remote.test[127.0.0.1]:{port}" in line, line


def test_null_mx_and_nxdomain_bounce(instance):
    zone = {("nomail.test", "MX"): [(0, ".")]}
    with DnsServer(zone) as dport:
        postconf(instance, f"dns_servers = 127.0.0.1:{dport}")
        instance.start()
        instance.sendmail(["-f", "snd@localhost", "u@nomail.test"], MSG)
        instance.sendmail(["-f", "snd@localhost", "u@nx.test"], MSG)
        instance.wait_for_mail("snd", 2)
        wait_queue_empty(instance)
    log = instance.log()
    assert "dsn=5.1.10, status=bounced (Domain nomail.test does not accept mail (nullMX))" in log, log
    assert ("dsn=5.4.4, status=bounced (Host or domain name not found. Name service error "
            "for name=nx.test type=MX: Host not found)") in log, log


def test_lmtp_to_smtp_sink(instance):
    port = free_port()
    with Sink(port, "-L"):
        postconf(instance, f"default_transport = lmtp:inet:127.0.0.1:{port}")
        instance.start()
        instance.sendmail(["-f", "snd@localhost", "a@remote.example", "b@remote.example"], MSG)
        instance.wait_for(lambda: instance.log().count("status=sent") >= 2, what="2 x status=sent")
        wait_queue_empty(instance)
    lines = [l for l in instance.log().splitlines() if "status=sent" in l]
    assert all("/lmtp[" in l and f"relay=127.0.0.1[127.0.0.1]:{port}" in l for l in lines), lines


def test_transport_maps_route_and_relay_domains(instance):
    """transport_maps picks transport and next hop per domain; relay_domains
    selects relay_transport (master.cf's `relay` service runs smtp)."""
    a, b = free_port(), free_port()
    with Sink(a), Sink(b):
        postconf(instance, f"transport_maps = inline:{{routed.example=smtp:[127.0.0.1]:{a}}}",
                 "relay_domains = relayed.example", f"relayhost = [127.0.0.1]:{b}")
        instance.start()
        instance.sendmail(["-f", "snd@localhost", "x@routed.example"], MSG)
        instance.sendmail(["-f", "snd@localhost", "y@relayed.example"], MSG)
        instance.wait_for(lambda: instance.log().count("status=sent") >= 2, what="two deliveries")
        wait_queue_empty(instance)
    log = instance.log()
    routed = next(l for l in log.splitlines() if "to=<x@routed.example>" in l)
    assert f"relay=127.0.0.1[127.0.0.1]:{a}" in routed, routed
    relayed = next(l for l in log.splitlines() if "to=<y@relayed.example>" in l)
    assert f"relay=127.0.0.1[127.0.0.1]:{b}" in relayed, relayed
    # master.cf's relay service logs as postfix/relay/smtp, as Postfix does.
    assert "postfix/relay/smtp[" in relayed, relayed
