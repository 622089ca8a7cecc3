"""master's robustness and availability (issue 10 §1 and §8), in root instances
started with `postern start` (master detached, daemons dropping to mail_owner):

* kill -9 of one child of each daemon type in turn under SMTP load: master
  survives, logs Postfix's `warning: process NAME pid N killed by signal 9`,
  does not throttle (the process had served), and the next message is
  delivered within seconds;
* a daemon that dies at start-up IS throttled (`bad command startup`);
* a burst of simultaneous connections right after start: every one greeted;
* `inet_interfaces` with an IPv4 and an IPv6 address, then `all`: a bare-port
  service accepts on both families (`postern check` passes first);
* a reload keeps the listeners: no client refused while master reloads;
* a TLS key readable only by root (0640 root:root) works with STARTTLS;
* `start-fg` with a stderr pipe nobody reads: a child's death does not kill
  master; `start-fg` purges unfinished queue files as `start` does.
"""

from __future__ import annotations

import os
import re
import resource
import selectors
import signal
import smtplib
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from postern import TEST_USER, ensure_user, free_port
from test_relay_extra import _ipv6_ok
from test_smtpd_tls import OPENSSL, certdir, mint

RCPT = f"{TEST_USER}@localhost"
FAST = ("queue_run_delay = 1s", "minimal_backoff_time = 1s", "maximal_backoff_time = 2s")


def postconf(inst, *settings: str) -> None:
    inst.run("postconf", "-e", *settings)


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"{host} port {port} not listening") from None
            time.sleep(0.05)


def smtp_send(port: int, subject: str, host: str = "127.0.0.1", rcpt: str = RCPT) -> None:
    with smtplib.SMTP(host, port, timeout=15) as s:
        s.sendmail("sender@localhost", [rcpt], f"Subject: {subject}\n\nbody\n")


def delivered_subjects(inst) -> set[str]:
    out = set()
    for p in inst.new_messages(TEST_USER):
        m = re.search(rb"^Subject: (.*)$", p.read_bytes(), re.M)
        if m:
            out.add(m.group(1).decode().strip())
    return out


def wait_delivered(inst, subject: str, timeout: float = 15) -> float:
    t0 = time.monotonic()
    inst.wait_for(lambda: subject in delivered_subjects(inst), timeout=timeout,
                  what=f"{subject!r} delivered to {TEST_USER}")
    return time.monotonic() - t0


def argv0(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.split(b"\0", 1)[0].decode(errors="replace") if raw else None


def daemons(inst, name: str) -> list[int]:
    """PIDs of live children of master whose argv[0] is `name`."""
    master = inst.master_pid()
    out = []
    for p in inst.processes():
        if p.alive() and p.pid != master and argv0(p.pid) == name:
            out.append(p.pid)
    return sorted(out)


class Load(threading.Thread):
    """Sends one message after another over SMTP until stopped; records which
    were acknowledged and the longest time without an acknowledgement."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.acked: list[int] = []
        self.failures = 0
        self.max_gap = 0.0

    def run(self) -> None:
        last = time.monotonic()
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                smtp_send(self.port, f"load {i}")
            except (smtplib.SMTPException, OSError):
                self.failures += 1
                time.sleep(0.05)
                continue
            self.acked.append(i)
            now = time.monotonic()
            self.max_gap = max(self.max_gap, now - last)
            last = now


@pytest.fixture
def root_started(root_instance):
    ensure_user(TEST_USER)
    return root_instance


# --------------------------------------------------------------------------- kill -9


def test_kill9_each_daemon_type_master_survives_without_throttle(root_started):
    inst = root_started
    # Loopback clients are counted by anvil too (not exempt), so anvil runs.
    postconf(inst, *FAST, "smtpd_client_event_limit_exceptions =")
    inst.start()
    wait_port(inst.port)
    master = inst.master_pid()
    # Warm up: every daemon type runs and has served once.
    smtp_send(inst.port, "warm smtp")
    inst.sendmail(["-f", "sender@localhost", RCPT], b"Subject: warm pickup\n\nbody\n")
    smtp_send(inst.port, "warm bounce", rcpt="no-such-user-xyz@localhost")
    wait_delivered(inst, "warm smtp")
    wait_delivered(inst, "warm pickup")
    inst.wait_for(lambda: daemons(inst, "bounce"), what="a bounce process")
    load = Load(inst.port)
    load.start()
    times = {}
    for n, name in enumerate(("smtpd", "cleanup", "qmgr", "pickup", "local", "bounce", "anvil")):
        pids = inst.wait_for(lambda: daemons(inst, name), what=f"a running {name}")
        victim = pids[0]
        os.kill(victim, signal.SIGKILL)
        line = f"warning: process {name} pid {victim} killed by signal 9"
        inst.wait_for(lambda: line in inst.log(), timeout=10, what=line)
        assert inst.master_pid() == master and inst.master_alive(), inst.log_excerpt()
        subject = f"after {name} {n}"
        if name == "pickup":
            inst.sendmail(["-f", "sender@localhost", RCPT], f"Subject: {subject}\n\nbody\n".encode())
        else:
            smtp_send(inst.port, subject)
        times[name] = wait_delivered(inst, subject, timeout=15)
    load.stop.set()
    load.join(timeout=30)
    assert len(load.acked) > 20, load.acked
    # Nothing acknowledged under fire is lost; clients were never refused long.
    inst.wait_for(lambda: {f"load {i}" for i in load.acked} <= delivered_subjects(inst), timeout=30,
                  what=f"all {len(load.acked)} acknowledged load messages delivered")
    assert load.max_gap < 10, load.max_gap
    log = inst.log()
    assert "bad command startup" not in log, log
    assert max(times.values()) < 10, times
    print(f"delivery after kill -9 (s): { {k: round(v, 2) for k, v in times.items()} }; "
          f"load: {len(load.acked)} acknowledged, {load.failures} failed sessions, "
          f"longest gap between 250s {load.max_gap:.2f}s")


def test_startup_failure_is_throttled(root_started):
    inst = root_started
    bad = free_port()
    with open(inst.root / "master.cf", "a") as f:
        f.write(f"\n127.0.0.1:{bad} inet n - y - - smtpd\n  -o mail_owner=no-such-owner-xyz\n")
    inst.start()
    wait_port(inst.port)
    master = inst.master_pid()
    s = socket.create_connection(("127.0.0.1", bad), timeout=5)
    try:
        inst.wait_for(lambda: "smtpd: bad command startup -- throttling" in inst.log(), timeout=10,
                      what="the throttle warning")
        assert re.search(r"warning: process smtpd pid \d+ exit status 1", inst.log())
        # Throttled: no new process for this service, and the good one still works.
        time.sleep(0.5)
        assert inst.log().count("bad command startup") == 1, inst.log_excerpt()
        with smtplib.SMTP("127.0.0.1", inst.port, timeout=10) as c:
            assert c.noop()[0] == 250
        assert inst.master_pid() == master and inst.master_alive()
    finally:
        s.close()


# --------------------------------------------------------------------------- burst


def greet_all(host: str, port: int, n: int, timeout: float) -> tuple[int, list[str]]:
    """Opens n connections at once; returns (greeted with 220, other first lines)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(n):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((host, port))
        socks.append(s)
        sel.register(s, selectors.EVENT_READ, bytearray())
    greeted, other = 0, []
    pending = n
    deadline = time.monotonic() + timeout
    try:
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.5):
                buf = key.data
                try:
                    chunk = key.fileobj.recv(512)
                except BlockingIOError:
                    continue
                except OSError as e:
                    chunk = b""
                    other.append(f"error {e}")
                buf += chunk
                if b"\n" in buf or not chunk:
                    line = bytes(buf).split(b"\n", 1)[0].decode(errors="replace")
                    if line.startswith("220 "):
                        greeted += 1
                    elif chunk:
                        other.append(line)
                    elif not other or not other[-1].startswith("error"):
                        other.append("closed without greeting")
                    sel.unregister(key.fileobj)
                    pending -= 1
    finally:
        for s in socks:
            s.close()
        sel.close()
    return greeted, other


def burst_size(wanted: int = 2000) -> int:
    """`wanted` connections, or fewer when this process cannot hold that many
    descriptors (the soft limit is raised to the hard one first)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return max(100, min(wanted, soft - 200))


def test_burst_at_start_every_connection_greeted(root_started):
    """The issue's 2,000 connections right after start (with the standard
    library's backlog of 128, about 80 of them were never greeted: the kernel
    dropped their handshake ACK while the first smtpd started)."""
    inst = root_started
    inst.start()
    n = burst_size()
    t0 = time.monotonic()
    greeted, other = greet_all("127.0.0.1", inst.port, n, timeout=30)
    took = time.monotonic() - t0
    print(f"burst: {greeted}/{n} greeted in {took:.1f}s; others: {other[:5]}")
    assert greeted == n, (greeted, other[:10], inst.log_excerpt(40))
    assert inst.master_alive()


# --------------------------------------------------------------------------- inet_interfaces


def bare_port_service(inst, port: int) -> None:
    cf = inst.root / "master.cf"
    text = cf.read_text()
    text = re.sub(rf"^127\.0\.0\.1:{inst.port}\s+inet", f"{port} inet", text, flags=re.M)
    cf.write_text(text)


def greeting(host: str, port: int) -> str:
    with smtplib.SMTP(host, port, timeout=10) as s:
        return s.ehlo()[1].decode()


@pytest.mark.skipif(not _ipv6_ok(), reason="no IPv6 loopback")
def test_inet_interfaces_ipv4_ipv6_and_all(root_started):
    inst = root_started
    port = inst.port
    bare_port_service(inst, port)
    postconf(inst, "inet_interfaces = 127.0.0.1, [::1]", "inet_protocols = all")
    inst.run("check")
    inst.start()
    for host in ("127.0.0.1", "::1"):
        wait_port(port, host)
        assert greeting(host, port)
    # One smtpd serves both listeners (passed with -s 2).
    procs = daemons(inst, "smtpd")
    assert len(procs) == 1, procs
    args = Path(f"/proc/{procs[0]}/cmdline").read_bytes().split(b"\0")
    assert b"-s" in args and args[args.index(b"-s") + 1] == b"2", args
    # `all`: the IPv4 and the IPv6 wildcard.
    postconf(inst, "inet_interfaces = all")
    inst.run("check")
    inst.reload()
    for host in ("127.0.0.1", "::1"):
        inst.wait_for(lambda: greeting(host, port), timeout=10, what=f"greeting on {host} after reload")
    assert inst.master_alive()


def test_reload_keeps_listening(root_started):
    """A reload keeps the listening sockets of unchanged services (as Postfix's
    master): no client is refused while master reloads."""
    inst = root_started
    inst.start()
    wait_port(inst.port)
    stop = threading.Event()
    refused, greeted = [], []

    def connect_loop() -> None:
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", inst.port), timeout=10) as c:
                    c.settimeout(10)
                    if c.recv(512).startswith(b"220"):
                        greeted.append(1)
            except ConnectionRefusedError:
                refused.append(1)
            except OSError:
                pass

    t = threading.Thread(target=connect_loop, daemon=True)
    t.start()
    try:
        for _ in range(3):
            inst.reload()
            time.sleep(0.5)
    finally:
        stop.set()
        t.join(timeout=20)
    assert not refused, f"{len(refused)} connections refused during reload"
    assert greeted
    assert inst.log().count("reload -- version") == 3, inst.log_excerpt(30)
    assert "is not served" not in inst.log(), inst.log_excerpt(30)


# --------------------------------------------------------------------------- TLS key as root


@pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed")
def test_root_only_tls_key_is_read_before_privileges_drop(root_started):
    inst = root_started
    cert, key = mint(certdir(inst), "rootonly", "mx.test.example")
    os.chown(key, 0, 0)
    key.chmod(0o640)
    postconf(inst, "smtpd_tls_security_level = may", f"smtpd_tls_cert_file = {cert}",
             f"smtpd_tls_key_file = {key}")
    inst.start()
    wait_port(inst.port)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=15) as s:
        s.ehlo("client.example")
        assert s.has_extn("starttls"), inst.log_excerpt(30)
        assert s.starttls(context=ctx)[0] == 220
        s.ehlo("client.example")
        s.sendmail("sender@localhost", [RCPT], "Subject: over tls\n\nbody\n")
    wait_delivered(inst, "over tls")
    assert "cannot load" not in inst.log() and "disabling TLS" not in inst.log(), inst.log_excerpt(30)


# --------------------------------------------------------------------------- start-fg


def test_start_fg_master_survives_a_closed_stderr(root_started):
    """start-fg under a supervisor that stopped reading: master's stderr is a
    pipe with no reader; a child's death (a warning) must not kill master."""
    inst = root_started
    r, w = os.pipe()
    p = subprocess.Popen([str(inst.binary), "-c", str(inst.root), "start-fg"], stdin=subprocess.DEVNULL,
                         stdout=w, stderr=w, env=inst.env(), cwd=inst.base)
    inst._popens.append(p)
    os.close(w)
    try:
        inst.wait_for(lambda: p.poll() is None and inst.status(), what="start-fg master running")
        os.close(r)
        r = -1
        wait_port(inst.port)
        smtp_send(inst.port, "before")
        victim = inst.wait_for(lambda: daemons(inst, "smtpd"), what="an smtpd")[0]
        os.kill(victim, signal.SIGKILL)
        line = f"warning: process smtpd pid {victim} killed by signal 9"
        inst.wait_for(lambda: line in inst.log(), timeout=10, what=line)
        smtp_send(inst.port, "after")
        wait_delivered(inst, "after")
        assert p.poll() is None, inst.log_excerpt(20)
    finally:
        if r >= 0:
            os.close(r)


def test_start_fg_purges_unfinished_queue_files(instance):
    inst = instance
    leftover = inst.root / "queue" / "incoming" / "t.1.2"
    leftover.write_bytes(b"partial")
    inst.start_fg()
    assert not leftover.exists()
