"""test_spawn.py -- the spawn daemon (Postfix's spawn(8)) in a root instance.

* Debian's documented policyd-spf line, unchanged: `policyd-spf unix - n n - 0 spawn
  user=nobody argv=/usr/bin/policyd-spf` with `check_policy_service
  unix:private/policyd-spf`. policyd-spf reads /etc/resolv.conf, so the instance runs in a
  private mount namespace (`unshare -m`) where a temporary resolv.conf names a loopback DNS
  server (dnsserver.py, on port 53 of a random 127/8 address) publishing the SPF record;
  XCLIENT sets the client address the policy checks. A pass gets policyd-spf's
  Received-SPF header (held by a header check, so the test sees it in the queue); a fail is
  rejected at RCPT with policyd-spf's text.
* A scripted command: runs as user= (nobody's uid and gid, no supplementary group), with
  the connection as stdin/stdout/stderr; its exit status is logged; `SERVICE_time_limit`
  kills it (Postfix's two warnings); user=root is refused at start.

Needs root (skipped otherwise); the SPF part also needs unshare/mount (skipped with the
reason otherwise). Every process is stopped by PID, every wait bounded.
"""

from __future__ import annotations

import os
import pwd
import random
import smtplib
import socket
import subprocess
import time
from pathlib import Path

import pytest

from dnsserver import DnsServer
from postern import COMMAND_TIMEOUT, MAX_WAIT
from test_content_filter import add_services
from test_smtp_client import postconf, wait_port

POLICYD_SPF = "/usr/bin/policyd-spf"


def private(inst, name: str) -> Path:
    return inst.root / "queue" / "private" / name


def talk(path: Path, send: bytes = b"", timeout: float = 20) -> bytes:
    """Connects to a spawn service, sends `send`, half-closes, reads until the command
    closes the connection."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(send)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(4096):
            out += chunk
        return out


def status_uids(pid: int) -> tuple[int, int]:
    """(real, effective) uid of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            real, eff = line.split()[1:3]
            return int(real), int(eff)
    raise AssertionError(f"no Uid line for {pid}")


def loopback_dns_address() -> str | None:
    """A 127/8 address where UDP port 53 is free (a DNS server for resolv.conf)."""
    for _ in range(20):
        ip = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((ip, 53))
                return ip
            except OSError:
                continue
    return None


@pytest.mark.skipif(not os.access(POLICYD_SPF, os.X_OK), reason="policyd-spf is not installed "
                    "(postfix-policyd-spf-python)")
def test_policyd_spf_through_spawn(root_instance):
    inst = root_instance
    ip = loopback_dns_address()
    if ip is None:
        pytest.skip("no loopback address with a free UDP port 53")
    resolv = inst.base / "resolv.conf"
    resolv.write_text(f"nameserver {ip}\noptions timeout:2 attempts:1\n")
    resolv.chmod(0o644)
    hide = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            f'mount --bind {resolv} /etc/resolv.conf && exec "$@"', "sh"]
    if subprocess.run([*hide, "true"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip("cannot make a private mount namespace here (unshare -m, mount --bind)")
    zone = {("example.test", "TXT"): ["v=spf1 ip4:192.0.2.10 -all"]}
    postconf(inst, "smtpd_authorized_xclient_hosts = 127.0.0.0/8",
             "smtpd_recipient_restrictions = reject_unauth_destination, "
             "check_policy_service unix:private/policyd-spf",
             "policyd-spf_time_limit = 3600",
             "header_checks = regexp:{ {/^Received-SPF: Pass/ HOLD} }")
    add_services(inst, f"policyd-spf unix - n n - 0 spawn user=nobody argv={POLICYD_SPF}")
    with DnsServer(zone, host=ip, port=53) as _port:
        r = subprocess.run([*hide, str(inst.binary), "-c", str(inst.root), "start"],
                           capture_output=True, timeout=COMMAND_TIMEOUT, env=inst.env())
        assert r.returncode == 0, r.stderr.decode()
        inst.wait_for(lambda: inst.master_pid() is not None and inst.status(), what="master running")
        wait_port(inst.port)

        def session(addr: str) -> tuple[int, bytes]:
            with smtplib.SMTP("127.0.0.1", inst.port, local_hostname="client.example",
                              timeout=MAX_WAIT) as c:
                c.ehlo()
                code, _ = c.docmd("XCLIENT", f"ADDR={addr} NAME=mail.example.test")
                assert code == 220, code
                c.ehlo("mail.example.test")
                c.mail("a@example.test")
                code, text = c.rcpt("postern-test@localhost")
                if code == 250:
                    c.data(b"Subject: spf\r\n\r\nbody\r\n")
                return code, text

        code, text = session("192.0.2.99")
        assert code == 550, text
        assert b"SPF fail - not authorized" in text, text
        code, text = session("192.0.2.10")
        assert code == 250, text
        held = inst.wait_for(lambda: [m for m in inst.postqueue_json() if m.get("queue_name") == "hold"],
                             what="the SPF-passed message on hold")
        assert len(held) == 1
    log = inst.log()
    assert "hold: header Received-SPF: Pass" in log, log
    assert "spawn" not in "".join(l for l in log.splitlines() if "warning" in l or "fatal" in l), log


def test_scripted_command_user_exit_status_and_time_limit(root_instance):
    inst = root_instance
    nobody = pwd.getpwnam("nobody")
    script = inst.base / "svc.sh"
    script.write_text("#!/bin/sh\n"
                      "echo \"ids $(id -u) $(id -g) $(id -G)\"\n"
                      "read line\n"
                      "case \"$line\" in\n"
                      "  sleep) echo sleeping; sleep 60 & sleep 60 ;;\n"
                      "  fail) echo failing >&2; exit 3 ;;\n"
                      "  *) echo \"got $line\" ;;\n"
                      "esac\n")
    script.chmod(0o755)
    postconf(inst, "svc_time_limit = 2s")
    add_services(inst,
                 f"svc unix - n n - 0 spawn user=nobody argv={script}",
                 f"rootsvc unix - n n - 0 spawn user=root argv={script}")
    inst.start()
    out = talk(private(inst, "svc"), b"hello\n")
    assert out == f"ids {nobody.pw_uid} {nobody.pw_gid} {nobody.pw_gid}\ngot hello\n".encode(), out
    # Between commands spawn works with mail_owner's effective uid (root's real uid
    # is kept to start the next command as user=).
    owner = pwd.getpwnam(inst.run("postconf", "-h", "mail_owner").stdout.decode().strip())
    spawns = inst.wait_for(lambda: [p for p in inst.processes() if p.alive() and Path(
        f"/proc/{p.pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"spawn")], what="spawn process")
    uids = inst.wait_for(lambda: {status_uids(p.pid) for p in spawns} == {(0, owner.pw_uid)}
                         and {status_uids(p.pid) for p in spawns}, what="spawn idle as mail_owner")
    assert uids == {(0, owner.pw_uid)}
    out = talk(private(inst, "svc"), b"fail\n")
    assert out.endswith(b"failing\n"), out
    inst.wait_for(lambda: f"warning: command {script} exit status 3" in inst.log(),
                  what="exit status warning")
    started = time.monotonic()
    out = talk(private(inst, "svc"), b"sleep\n")
    assert out.endswith(b"sleeping\n") and time.monotonic() - started < 15, out
    # The kill is logged after the time-limit warning, once spawn has reaped the command.
    inst.wait_for(lambda: f"warning: command {script} killed by signal 9" in inst.log(),
                  what="killed-by-signal warning")
    log = inst.log()
    assert f"warning: {script}: process id " in log and "command time limit exceeded" in log, log
    # user=root: spawn refuses to start; the client sees the connection closed.
    try:
        talk(private(inst, "rootsvc"), b"x\n", timeout=3)
    except OSError:
        pass
    inst.wait_for(lambda: "request to deliver as root" in inst.log(), what="root refusal")
    assert not any(l for l in inst.log().splitlines() if "ids 0 " in l)
