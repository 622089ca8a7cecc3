"""The smtp/lmtp delivery agent (issue 4) against real peers on loopback:
Postfix's smtp-sink, a scripted Python SMTP peer (per-recipient refusals), and
dnsserver.py for MX lookups. No test queries the machine's own resolver:
every instance that looks anything up sets dns_servers to the loopback server.
"""

from __future__ import annotations

import email
import email.policy
import os
import ssl
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
    `bad` (550 5.1.1), accepts everything else; keeps the messages.

    `greeting` replaces the 220 banner (a non-2xx greeting ends the session);
    `tls` (an ssl.SSLContext) offers STARTTLS; `break_tls` answers 220 to
    STARTTLS and then sends garbage instead of a TLS handshake."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, greeting: str = "220 peer.test ESMTP",
                 tls: ssl.SSLContext | None = None, break_tls: bool = False, eightbit: bool = True):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.greeting = greeting
        self.tls = tls
        self.break_tls = break_tls
        self.eightbit = eightbit
        self.connections = 0
        self.tls_sessions = 0
        self.tls_messages = 0
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
            self.connections += 1
            with c:
                c.settimeout(10)
                try:
                    self._session(c)
                except (OSError, ValueError):
                    pass

    def _session(self, c: socket.socket) -> None:
        f = c.makefile("rwb")
        in_tls = False

        def say(s: str) -> None:
            f.write(s.encode() + b"\r\n")
            f.flush()
        say(self.greeting)
        if not self.greeting.startswith("2"):
            self.transcript.append("(greeting refused)")
            return
        rcpts: list[str] = []
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line.decode(errors="replace").rstrip("\r\n")
            self.transcript.append(cmd)
            u = cmd.upper()
            if u.startswith("EHLO"):
                starttls = "250-STARTTLS\r\n" if self.tls is not None and not in_tls else ""
                last = "250 8BITMIME" if self.eightbit else "250 ENHANCEDSTATUSCODES"
                say(f"250-peer.test\r\n250-PIPELINING\r\n{starttls}250-SIZE 10000000\r\n{last}")
            elif u == "STARTTLS" and self.tls is not None and not in_tls:
                say("220 2.0.0 Ready to start TLS")
                if self.break_tls:
                    c.sendall(b"this is not a TLS server hello\r\n" * 4)
                    return
                tls = self.tls.wrap_socket(c, server_side=True)
                self.tls_sessions += 1
                in_tls = True
                f = tls.makefile("rwb")
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
                self.tls_messages += in_tls
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


# --- MX failover --------------------------------------------------------------

def _mx_zone(mx1_addr: str) -> dict:
    return {("remote.test", "MX"): [(10, "mx1.remote.test"), (20, "mx2.remote.test")],
            ("mx1.remote.test", "A"): [mx1_addr],
            ("mx2.remote.test", "A"): ["127.0.0.1"]}


def test_mx_primary_refuses_connection_secondary_delivers(instance):
    """mx1 resolves to 127.0.0.2 where nothing listens on the port
    (connection refused); mx2 is smtp-sink on 127.0.0.1."""
    port = free_port()
    with DnsServer(_mx_zone("127.0.0.2")) as dport, Sink(port):
        postconf(instance, f"dns_servers = 127.0.0.1:{dport}", f"relayhost = remote.test:{port}")
        instance.start()
        instance.sendmail(["-f", "snd@localhost", "u@remote.example"], MSG)
        instance.wait_for(lambda: "status=sent" in instance.log(), what="status=sent")
        wait_queue_empty(instance)
    log = instance.log()
    line = next(l for l in log.splitlines() if "status=sent" in l)
    assert f"relay=mx2.remote.test[127.0.0.1]:{port}" in line, line
    assert f"connect to mx1.remote.test[127.0.0.2]:{port}: Connection refused" in log, log
    # The failure before the fallback is an info line, not a delivery status.
    assert "status=deferred" not in log, log


def test_mx_primary_421_greeting_secondary_delivers(instance):
    """mx1 (127.0.0.2) greets with 421: the client moves on to mx2."""
    port = free_port()
    busy = Peer(host="127.0.0.2", port=port, greeting="421 4.3.2 mx1 busy, try later")
    try:
        with DnsServer(_mx_zone("127.0.0.2")) as dport, Sink(port):
            postconf(instance, f"dns_servers = 127.0.0.1:{dport}", f"relayhost = remote.test:{port}")
            instance.start()
            instance.sendmail(["-f", "snd@localhost", "u@remote.example"], MSG)
            instance.wait_for(lambda: "status=sent" in instance.log(), what="status=sent")
            wait_queue_empty(instance)
    finally:
        busy.close()
    assert busy.connections >= 1 and "(greeting refused)" in busy.transcript
    log = instance.log()
    line = next(l for l in log.splitlines() if "status=sent" in l)
    assert f"relay=mx2.remote.test[127.0.0.1]:{port}" in line, line
    assert ("host mx1.remote.test[127.0.0.2] refused to talk to me: "
            "421 4.3.2 mx1 busy, try later") in log, log


def test_all_mx_down_deferred_names_last_host(instance):
    port = free_port()
    zone = _mx_zone("127.0.0.2")
    zone[("mx2.remote.test", "A")] = ["127.0.0.3"]
    with DnsServer(zone) as dport:
        postconf(instance, f"dns_servers = 127.0.0.1:{dport}", f"relayhost = remote.test:{port}",
                 "minimal_backoff_time = 300s", "maximal_backoff_time = 4000s")
        instance.start()
        instance.sendmail(["-f", "snd@localhost", "u@remote.example"], MSG)
        instance.wait_for(lambda: "status=deferred" in instance.log(), what="status=deferred")
    log = instance.log()
    assert f"connect to mx1.remote.test[127.0.0.2]:{port}: Connection refused" in log, log
    line = next(l for l in log.splitlines() if "status=deferred" in l)
    assert ("relay=none, " in line and f"dsn=4.4.1, status=deferred (connect to "
            f"mx2.remote.test[127.0.0.3]:{port}: Connection refused)") in line, line


# --- STARTTLS -------------------------------------------------------------------

@pytest.fixture(scope="module")
def server_tls(tmp_path_factory) -> ssl.SSLContext:
    if shutil.which("openssl") is None:
        pytest.skip("openssl(1) is needed for a test certificate")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d / "key.pem",
                    "-out", d / "cert.pem", "-days", "2", "-subj", "/CN=mx.test.example"],
                   check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "cert.pem", d / "key.pem")
    return ctx


def _relay_to(instance, peer, *settings):
    postconf(instance, f"relayhost = [127.0.0.1]:{peer.port}", *settings)
    instance.start()
    instance.sendmail(["-f", "snd@localhost", "u@remote.example"], MSG)


def test_starttls_may_upgrades_and_logs(instance, server_tls):
    peer = Peer(tls=server_tls)
    try:
        _relay_to(instance, peer, "smtp_tls_security_level = may", "smtp_tls_loglevel = 1")
        instance.wait_for(lambda: "status=sent" in instance.log(), what="status=sent")
        wait_queue_empty(instance)
    finally:
        peer.close()
    assert peer.tls_sessions == 1 and peer.tls_messages == 1, peer.transcript
    # EHLO again after the handshake; the message went over TLS.
    assert [c.split()[0].upper() for c in peer.transcript[:3]] == ["EHLO", "STARTTLS", "EHLO"], peer.transcript
    log = instance.log()
    assert (f"Untrusted TLS connection established to 127.0.0.1[127.0.0.1]:{peer.port}: "
            "TLSv1.3 with cipher TLS_") in log, log


def test_starttls_may_plaintext_when_not_offered(instance):
    port = free_port()
    with Sink(port):
        postconf(instance, f"relayhost = [127.0.0.1]:{port}", "smtp_tls_security_level = may")
        instance.start()
        instance.sendmail(["-f", "snd@localhost", "u@remote.example"], MSG)
        instance.wait_for(lambda: "status=sent" in instance.log(), what="status=sent")
        wait_queue_empty(instance)
    assert "TLS connection established" not in instance.log()


def test_starttls_compat_level_3_11_defaults_to_may(instance, server_tls):
    peer = Peer(tls=server_tls)
    try:
        _relay_to(instance, peer, "compatibility_level = 3.11", "smtp_tls_loglevel = 1")
        instance.wait_for(lambda: "status=sent" in instance.log(), what="status=sent")
    finally:
        peer.close()
    assert peer.tls_messages == 1, peer.transcript
    assert "Untrusted TLS connection established" in instance.log()


def test_starttls_none_never_upgrades(instance, server_tls):
    peer = Peer(tls=server_tls)
    try:
        _relay_to(instance, peer, "smtp_tls_security_level = none")
        instance.wait_for(lambda: "status=sent" in instance.log(), what="status=sent")
    finally:
        peer.close()
    assert peer.tls_sessions == 0 and "STARTTLS" not in peer.transcript, peer.transcript


def test_starttls_may_handshake_failure_retries_plaintext(instance, server_tls):
    peer = Peer(tls=server_tls, break_tls=True)
    try:
        _relay_to(instance, peer, "smtp_tls_security_level = may")
        instance.wait_for(lambda: "status=sent" in instance.log(), what="status=sent")
        wait_queue_empty(instance)
    finally:
        peer.close()
    assert peer.connections == 2 and len(peer.messages) == 1 and peer.tls_messages == 0, peer.transcript
    assert peer.transcript.count("STARTTLS") == 1, peer.transcript
    log = instance.log()
    assert "Cannot start TLS: handshake failure" in log and "retrying without TLS" in log, log


def test_starttls_encrypt_not_offered_defers(instance):
    port = free_port()
    with Sink(port):
        postconf(instance, f"relayhost = [127.0.0.1]:{port}", "smtp_tls_security_level = encrypt",
                 "minimal_backoff_time = 300s", "maximal_backoff_time = 4000s")
        instance.start()
        instance.sendmail(["-f", "snd@localhost", "u@remote.example"], MSG)
        instance.wait_for(lambda: "status=deferred" in instance.log(), what="status=deferred")
    line = next(l for l in instance.log().splitlines() if "status=deferred" in l)
    assert (f"relay=127.0.0.1[127.0.0.1]:{port}, " in line and "dsn=4.7.4, status=deferred "
            "(TLS is required, but was not offered by host 127.0.0.1[127.0.0.1])") in line, line


def test_starttls_encrypt_delivers_over_tls(instance, server_tls):
    peer = Peer(tls=server_tls)
    try:
        _relay_to(instance, peer, "smtp_tls_security_level = encrypt")
        instance.wait_for(lambda: "status=sent" in instance.log(), what="status=sent")
    finally:
        peer.close()
    assert peer.tls_messages == 1, peer.transcript


# --- connection reuse -------------------------------------------------------------

def test_connection_reuse_same_nexthop(instance):
    """Five messages to one next hop, one at a time: the agent keeps the session
    open (smtp_connection_cache_time_limit) and sends RSET before reusing it."""
    peer = Peer()
    try:
        postconf(instance, f"relayhost = [127.0.0.1]:{peer.port}",
                 "smtp_destination_concurrency_limit = 1", "smtp_connection_cache_time_limit = 5s")
        instance.start()
        for i in range(5):
            instance.sendmail(["-f", "snd@localhost", f"u{i}@remote.example"], MSG)
        instance.wait_for(lambda: instance.log().count("status=sent") >= 5, what="5 x status=sent")
        wait_queue_empty(instance)
        # The idle session is closed with QUIT once the time limit passes.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and peer.transcript.count("QUIT") < peer.connections:
            time.sleep(0.1)
    finally:
        peer.close()
    assert len(peer.messages) == 5, peer.transcript
    assert peer.connections < 5, (peer.connections, peer.transcript)
    assert "RSET" in peer.transcript, peer.transcript
    assert peer.transcript.count("QUIT") == peer.connections, peer.transcript


def test_connection_reuse_off(instance):
    peer = Peer()
    try:
        postconf(instance, f"relayhost = [127.0.0.1]:{peer.port}",
                 "smtp_destination_concurrency_limit = 1", "smtp_connection_cache_on_demand = no")
        instance.start()
        for i in range(3):
            instance.sendmail(["-f", "snd@localhost", f"u{i}@remote.example"], MSG)
        instance.wait_for(lambda: instance.log().count("status=sent") >= 3, what="3 x status=sent")
    finally:
        peer.close()
    assert peer.connections == 3 and "RSET" not in peer.transcript, peer.transcript


# --- STARTTLS into Debian's Postfix (peers.md §3.1) -------------------------------

@pytest.mark.skipif(not os.path.exists("/usr/sbin/postfix") or os.geteuid() != 0
                    or shutil.which("openssl") is None,
                    reason="needs Debian's Postfix, openssl(1) and root")
def test_starttls_into_postfix_smtpd(instance, tmp_path):
    from test_postfix_peer import PostfixPeer

    port = free_port()
    peer = PostfixPeer(relayhost="")
    try:
        peer.setup()
        cert, key = peer.conf / "cert.pem", peer.conf / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=pfx.test.example"], check=True, capture_output=True)
        with open(peer.conf / "main.cf", "a") as f:
            f.write(f"smtpd_tls_security_level = may\nsmtpd_tls_cert_file = {cert}\n"
                    f"smtpd_tls_key_file = {key}\nsmtpd_tls_loglevel = 1\n"
                    "local_transport = discard:\ndefault_transport = discard:\n")
        with open(peer.conf / "master.cf", "a") as f:
            f.write(f"127.0.0.1:{port} inet n - n - - smtpd\n")
        peer.start()
        wait_port(port)
        postconf(instance, f"relayhost = [127.0.0.1]:{port}", "smtp_tls_security_level = may",
                 "smtp_tls_loglevel = 1")
        instance.start()
        instance.sendmail(["-f", "snd@localhost", "u@pfx.test.example"], MSG)
        instance.wait_for(lambda: "status=sent" in instance.log(), what="status=sent")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and "TLS connection established from" not in peer.log():
            time.sleep(0.1)
        pfx_log = peer.log()
    finally:
        peer.close()
    log = instance.log()
    assert f"Untrusted TLS connection established to 127.0.0.1[127.0.0.1]:{port}: TLSv1.3 with cipher" in log, log
    line = next(l for l in log.splitlines() if "status=sent" in l)
    assert "status=sent (250 2.0.0 Ok: queued as " in line, line
    assert "Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.3" in pfx_log, pfx_log


# --- 8BITMIME -> 7bit ------------------------------------------------------------

MSG8 = ("From: snd@localhost\nSubject: umlauts\nMIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
        "Grüße aus Köln = 100 %\n.dot\n").encode()


def test_8bit_to_peer_without_8bitmime_becomes_quoted_printable(instance):
    peer = Peer(eightbit=False)
    try:
        _relay_to_msg(instance, peer, MSG8)
        instance.wait_for(lambda: "status=sent" in instance.log(), what="status=sent")
    finally:
        peer.close()
    body = peer.messages[0][1]
    assert all(b < 0x80 for b in body), body
    assert b"Content-Transfer-Encoding: quoted-printable\r\n" in body, body
    assert b"8bit" not in body, body
    mail = next(c for c in peer.transcript if c.upper().startswith("MAIL FROM"))
    assert "BODY=8BITMIME" not in mail.upper(), mail
    # Undo the SMTP dot-stuffing, then let Python's MIME parser decode it.
    raw = b"\n".join(l[1:] if l.startswith(b"..") else l for l in body.split(b"\r\n"))
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content() == "Grüße aus Köln = 100 %\n.dot\n", raw


def test_8bit_sent_as_is_when_peer_has_8bitmime_or_conversion_disabled(instance):
    a, b = Peer(), Peer(eightbit=False)
    try:
        postconf(instance, f"transport_maps = inline:{{a.example=smtp:[127.0.0.1]:{a.port}, "
                           f"b.example=smtp:[127.0.0.1]:{b.port}}}",
                 "disable_mime_output_conversion = yes")
        instance.start()
        instance.sendmail(["-f", "snd@localhost", "u@a.example"], MSG8)
        instance.sendmail(["-f", "snd@localhost", "u@b.example"], MSG8)
        instance.wait_for(lambda: instance.log().count("status=sent") >= 2, what="2 x status=sent")
    finally:
        a.close()
        b.close()
    for p in (a, b):
        assert "Grüße".encode() in p.messages[0][1], p.messages
    mail = next(c for c in a.transcript if c.upper().startswith("MAIL FROM"))
    assert "BODY=8BITMIME" in mail.upper(), mail


def _relay_to_msg(instance, peer, msg, *settings):
    postconf(instance, f"relayhost = [127.0.0.1]:{peer.port}", *settings)
    instance.start()
    instance.sendmail(["-f", "snd@localhost", "u@remote.example"], msg)
