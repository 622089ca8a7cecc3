"""SMTP AUTH in smtpd (issue 6 section 2): the Dovecot backend against a real
Dovecot auth server, the built-in passwd-file backend with every hash scheme,
the restrictions that use the login, the rate limit, and bad input.

Dovecot runs from a private config in a temp dir: only its auth service, with a
passwd-file passdb, a UNIX listener (mode 0666, so the unprivileged instance can
reach it) and an inet listener on a free loopback port; it is stopped by the PID
in its base_dir. Hashes come from `doveadm pw -s SCHEME`. Expected replies and
log lines are Postfix 3.7.11's, checked against Postfix with Dovecot 2.3.19 SASL
(see crates/postern-smtpd/src/sasl/smtp.rs).

No test here leaves loopback, and every wait is bounded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from postern import Proc, free_port, kill_procs
from test_smtpd import Raw, started, wait_port

pytestmark = pytest.mark.skipif(
    not shutil.which("dovecot") or not shutil.which("doveadm") or os.geteuid() != 0,
    reason="needs root, dovecot and doveadm",
)

USERS = {"joe@example.org": "joe-Secret-1", "ann@example.org": "ann-Secret-2"}
OUTSIDE = "mynetworks = 192.0.2.0/24"      # 127.0.0.1 is not a trusted client
RELAY = "smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination"
MSG = b"Subject: sasl test\r\nFrom: joe@example.org\r\n\r\nbody\r\n"


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def plain(user: str, pw: str) -> str:
    return b64(f"\0{user}\0{pw}".encode())


def secrets() -> list[str]:
    """Strings that must never reach the maillog."""
    out = []
    for u, p in USERS.items():
        out += [p, plain(u, p), b64(p.encode())]
    return out + ["wrong-password", b64(b"wrong-password")]


def assert_no_secrets(instance) -> None:
    log = instance.log()
    for s in secrets():
        assert s not in log, f"secret {s!r} in maillog"


# --------------------------------------------------------------------------- dovecot

class Dovecot:
    """A private Dovecot auth server (auth service only)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="postern-dovecot-"))
        self.dir.chmod(0o755)
        self.port = free_port()
        self.socket = self.dir / "auth-client"
        (self.dir / "run").mkdir()
        (self.dir / "state").mkdir()
        passwd = "".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in USERS.items())
        (self.dir / "passwd").write_text(passwd)
        self.conf = self.dir / "dovecot.conf"
        self.conf.write_text(f"""
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.dir}/dovecot.log
protocols =
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login scram-sha-1 scram-sha-256 cram-md5
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = {self.dir}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
service auth {{
  unix_listener auth-client {{
    path = {self.socket}
    mode = 0666
  }}
  inet_listener {{
    address = 127.0.0.1
    port = {self.port}
  }}
}}
# No per-IP auth penalty for the loopback tests (Dovecot's penalty grows to 15 s).
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
""")
        # Output to a file, not a pipe: the daemon keeps its descriptors.
        with open(self.dir / "start.out", "wb") as out:
            r = subprocess.run(["dovecot", "-c", str(self.conf)], stdin=subprocess.DEVNULL,
                               stdout=out, stderr=subprocess.STDOUT, timeout=30)
        if r.returncode != 0:
            raise AssertionError(f"dovecot failed: {(self.dir / 'start.out').read_text()}")
        self.master = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            pid_file = self.dir / "run" / "master.pid"
            if self.master is None and pid_file.exists():
                self.master = Proc.of(int(pid_file.read_text().split()[0]))
            if self.master and self.socket.exists():
                try:
                    wait_port(self.port, timeout=1)
                    return
                except AssertionError:
                    pass
            time.sleep(0.05)
        self.close()
        raise AssertionError("dovecot auth did not come up")

    def close(self) -> None:
        if self.master is not None:
            kill_procs([self.master], grace=10)
        if os.environ.get("POSTERN_TEST_KEEP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def dovecot():
    d = Dovecot()
    yield d
    d.close()


def dovecot_settings(d: Dovecot, inet: bool = False) -> list[str]:
    path = f"inet:127.0.0.1:{d.port}" if inet else f"unix:{d.socket}"
    return ["smtpd_sasl_auth_enable = yes", "smtpd_sasl_type = dovecot",
            f"smtpd_sasl_path = {path}", OUTSIDE, RELAY]


def builtin_settings(instance, lines: str) -> list[str]:
    f = instance.base / "sasl-passwd"
    f.write_text(lines)
    if instance.user is not None:
        os.chown(f, instance.user.pw_uid, instance.user.pw_gid)
    f.chmod(0o600)
    return ["smtpd_sasl_auth_enable = yes", "smtpd_sasl_type = builtin",
            f"smtpd_sasl_path = {f}", OUTSIDE, RELAY]


def swaks(port: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["swaks", "-s", "127.0.0.1", "-p", str(port), "--helo", "client.example",
                           "--timeout", "15", *args], capture_output=True, text=True, timeout=60)


def ehlo_lines(port: int) -> list[str]:
    r = Raw(port)
    try:
        return r.cmd("EHLO client.example")[1].splitlines()
    finally:
        r.close()


# --------------------------------------------------------------------------- dovecot backend

@pytest.mark.skipif(not shutil.which("swaks"), reason="swaks not installed")
def test_dovecot_unix_swaks_plain_and_login_relay(instance, dovecot):
    started(instance, *dovecot_settings(dovecot), "broken_sasl_auth_clients = yes")
    lines = ehlo_lines(instance.port)
    assert "250-AUTH PLAIN LOGIN SCRAM-SHA-1 SCRAM-SHA-256 CRAM-MD5" in lines
    assert "250-AUTH=PLAIN LOGIN SCRAM-SHA-1 SCRAM-SHA-256 CRAM-MD5" in lines
    for mech in ("PLAIN", "LOGIN"):
        r = swaks(instance.port, "-a", mech, "-au", "joe@example.org", "-ap", USERS["joe@example.org"],
                  "-f", "joe@example.org", "-t", "x@remote.example", "--quit-after", "RCPT")
        assert "235 2.7.0 Authentication successful" in r.stdout, r.stdout
        assert "250 2.1.5 Ok" in r.stdout, r.stdout
    # Unauthenticated: relaying refused.
    r = swaks(instance.port, "-f", "joe@example.org", "-t", "x@remote.example", "--quit-after", "RCPT")
    assert "554 5.7.1 <x@remote.example>: Relay access denied" in r.stdout, r.stdout
    r = swaks(instance.port, "-a", "PLAIN", "-au", "joe@example.org", "-ap", "wrong-password",
              "-f", "joe@example.org", "-t", "x@remote.example", "--quit-after", "AUTH")
    assert "535 5.7.8 Error: authentication failed: (reason unavailable)" in r.stdout, r.stdout
    instance.wait_for(lambda: "SASL PLAIN authentication failed: (reason unavailable), "
                      "sasl_username=joe@example.org" in instance.log(), what="failure warning")
    assert_no_secrets(instance)


def test_dovecot_inet_smtplib_delivers_with_auth_fields(instance, dovecot):
    started(instance, *dovecot_settings(dovecot, inet=True), "smtpd_sasl_authenticated_header = yes")
    with smtplib.SMTP("127.0.0.1", instance.port, local_hostname="client.example", timeout=15) as c:
        c.login("joe@example.org", USERS["joe@example.org"])
        c.sendmail("joe@example.org", ["u@localhost"], MSG, mail_options=["AUTH=joe@example.org"])
    msg = instance.wait_for_mail("u")[0].read_text(errors="replace")
    assert "(Authenticated sender: joe@example.org)" in msg
    assert "with ESMTPA id" in msg
    # smtplib prefers CRAM-MD5 among Dovecot's mechanisms: its challenge is relayed.
    instance.wait_for(lambda: "client=localhost[127.0.0.1], sasl_method=CRAM-MD5, sasl_username=joe@example.org, "
                      "sasl_sender=joe@example.org" in instance.log(), what="client= line with SASL fields")
    instance.wait_for(lambda: "auth=1" in instance.log(), what="auth=1 in the disconnect line")
    assert_no_secrets(instance)


def scram_sha256(r: Raw, user: str, pw: str) -> tuple[int, str]:
    """A SCRAM-SHA-256 client (RFC 5802/7677) over our AUTH: the challenges come from Dovecot."""
    nonce = b64(os.urandom(18))
    first_bare = f"n={user},r={nonce}"
    code, text = r.cmd("AUTH SCRAM-SHA-256 " + b64(("n,," + first_bare).encode()))
    assert code == 334, text
    server_first = base64.b64decode(text[4:]).decode()
    fields = dict(kv.split("=", 1) for kv in server_first.split(","))
    assert fields["r"].startswith(nonce)
    salted = hashlib.pbkdf2_hmac("sha256", pw.encode(), base64.b64decode(fields["s"]), int(fields["i"]))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored = hashlib.sha256(client_key).digest()
    final_wo_proof = f"c=biws,r={fields['r']}"
    auth_msg = f"{first_bare},{server_first},{final_wo_proof}".encode()
    proof = bytes(a ^ b for a, b in zip(client_key, hmac.new(stored, auth_msg, "sha256").digest()))
    code, text = r.cmd(b64(f"{final_wo_proof},p={b64(proof)}".encode()))
    if code == 334:  # server-final message, then an empty response
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        want = b64(hmac.new(server_key, auth_msg, "sha256").digest())
        assert base64.b64decode(text[4:]).decode() == f"v={want}"
        code, text = r.cmd("")
    return code, text


def test_dovecot_scram_challenges_are_relayed(instance, dovecot):
    started(instance, *dovecot_settings(dovecot))
    r = Raw(instance.port)
    r.cmd("EHLO client.example")
    assert scram_sha256(r, "joe@example.org", USERS["joe@example.org"]) == (235, "235 2.7.0 Authentication successful")
    r.close()
    r = Raw(instance.port)
    r.cmd("EHLO client.example")
    code, text = scram_sha256(r, "joe@example.org", "wrong-password")
    assert code == 535 and text.startswith("535 5.7.8 Error: authentication failed:"), text
    r.close()


# Postfix 3.7.11 + Dovecot 2.3.19, exactly (smtpd_hard_error_limit high enough).
BAD_INPUT = [
    ("AUTH FOO", "535 5.7.8 Error: authentication failed: Invalid authentication mechanism"),
    ("AUTH PLAIN !!!!", "535 5.7.8 Error: authentication failed: Invalid base64 data in initial response"),
    (["AUTH LOGIN", "*"], "501 5.7.0 Authentication aborted"),
    (["AUTH PLAIN", "A" * 13000], "500 5.5.6 SASL response limit exceeded"),
    (["AUTH PLAIN", "!!!!"], "535 5.7.8 Error: authentication failed: Invalid base64 data in continued response"),
    ("AUTH PLAIN " + plain("joe@example.org", "wrong-password"),
     "535 5.7.8 Error: authentication failed: (reason unavailable)"),
    ("AUTH PLAIN =", "535 5.7.8 Error: authentication failed: (reason unavailable)"),
    ("AUTH", "501 5.5.4 Syntax: AUTH mechanism"),
    ("AUTH PLAIN a b", "501 5.5.4 Syntax: AUTH mechanism"),
    (["AUTH LOGIN", b64(b"joe@example.org"), b64(b"wrong-password")],
     "535 5.7.8 Error: authentication failed: (reason unavailable)"),
    ("MAIL FROM:<joe@example.org>", "250 2.1.0 Ok"),
    ("AUTH PLAIN " + plain("joe@example.org", USERS["joe@example.org"]), "503 5.5.1 Error: MAIL transaction in progress"),
    ("RSET", "250 2.0.0 Ok"),
    ("AUTH PLAIN " + plain("joe@example.org", USERS["joe@example.org"]), "235 2.7.0 Authentication successful"),
    ("AUTH PLAIN " + plain("joe@example.org", USERS["joe@example.org"]), "503 5.5.1 Error: already authenticated"),
]


def run_bad_input(instance) -> None:
    r = Raw(instance.port)
    r.cmd("EHLO client.example")
    for cmds, want in BAD_INPUT:
        cmds = [cmds] if isinstance(cmds, str) else cmds
        for c in cmds[:-1]:
            code, text = r.cmd(c)
            assert code == 334, (c, text)
        assert r.cmd(cmds[-1])[1] == want, cmds
    r.close()
    log = instance.log()
    assert "warning: localhost[127.0.0.1]: SASL LOGIN authentication aborted" in log
    assert "warning: localhost[127.0.0.1]: request longer than 12288: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA..." in log
    assert ("SASL FOO authentication failed: Invalid authentication mechanism, "
            "sasl_username=(unavailable)") in log
    assert_no_secrets(instance)


def test_dovecot_bad_input_replies(instance, dovecot):
    started(instance, *dovecot_settings(dovecot), "smtpd_hard_error_limit = 50", "smtpd_error_sleep_time = 0")
    before = (dovecot.dir / "dovecot.log").read_text(errors="replace").count("pending requests")
    run_bad_input(instance)
    # Aborted conversations are closed on Dovecot's side too (CONT id *), not left pending.
    assert (dovecot.dir / "dovecot.log").read_text(errors="replace").count("pending requests") == before


def test_builtin_bad_input_replies_match_dovecot(instance):
    lines = "".join(f"{u}:{{PLAIN}}{p}\n" for u, p in USERS.items())
    started(instance, *builtin_settings(instance, lines), "smtpd_hard_error_limit = 50",
            "smtpd_error_sleep_time = 0")
    run_bad_input(instance)


# --------------------------------------------------------------------------- builtin backend

@pytest.mark.parametrize("scheme", ["ARGON2ID", "BLF-CRYPT", "SHA512-CRYPT", "PLAIN"])
def test_builtin_scheme(instance, scheme):
    pw = f"pw-for-{scheme}"
    h = subprocess.run(["doveadm", "pw", "-s", scheme, "-p", pw], capture_output=True, text=True,
                       timeout=30, check=True).stdout.strip()
    assert h.startswith("{" + scheme + "}")
    started(instance, *builtin_settings(instance, f"# test users\nsam@example.org:{h}:1000:1000::/home/sam::\n"),
            "smtpd_sasl_local_domain = example.org")
    assert "250-AUTH PLAIN LOGIN" in ehlo_lines(instance.port)
    with smtplib.SMTP("127.0.0.1", instance.port, local_hostname="client.example", timeout=30) as c:
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            c.login("sam@example.org", "wrong-password")
        assert e.value.smtp_code == 535
        c.login("sam", pw)  # smtpd_sasl_local_domain completes the login
        assert c.rcpt("x@remote.example")[0] == 503  # no MAIL yet: the session is alive
        c.mail("sam@example.org")
        assert c.rcpt("x@remote.example")[0] == 250   # relaying allowed once authenticated
    instance.wait_for(lambda: "sasl_username=sam@example.org" in instance.log()
                      or "disconnect from" in instance.log(), what="session end")
    assert pw not in instance.log()


# --------------------------------------------------------------------------- policy words

def test_sender_login_maps(instance, dovecot):
    maps = instance.base / "logins"
    maps.write_text("joe@example.org joe@example.org\nann@example.org ann@example.org, joe@example.org\n"
                    "@shared.example joe@example.org\n")
    started(instance, *dovecot_settings(dovecot), f"smtpd_sender_login_maps = texthash:{maps}",
            "smtpd_sender_restrictions = reject_sender_login_mismatch")
    r = Raw(instance.port)
    r.cmd("EHLO client.example")
    # Unauthenticated, owned sender: "not logged in"; unowned sender: no login check.
    assert r.cmd("MAIL FROM:<joe@example.org>")[0] == 250
    assert r.cmd("RCPT TO:<u@localhost>")[1] == \
        "553 5.7.1 <joe@example.org>: Sender address rejected: not logged in"
    r.cmd("RSET")
    r.cmd("MAIL FROM:<stranger@example.net>")
    assert r.cmd("RCPT TO:<u@localhost>")[0] == 250
    r.cmd("RSET")
    assert r.cmd("AUTH PLAIN " + plain("ann@example.org", USERS["ann@example.org"]))[0] == 235
    r.cmd("MAIL FROM:<joe@example.org>")
    assert r.cmd("RCPT TO:<u@localhost>")[1] == \
        "553 5.7.1 <joe@example.org>: Sender address rejected: not owned by user ann@example.org"
    r.cmd("RSET")
    r.cmd("MAIL FROM:<stranger@example.net>")   # authenticated: unlisted is not owned either
    assert r.cmd("RCPT TO:<u@localhost>")[1] == \
        "553 5.7.1 <stranger@example.net>: Sender address rejected: not owned by user ann@example.org"
    r.cmd("RSET")
    r.cmd("MAIL FROM:<ann@example.org>")
    assert r.cmd("RCPT TO:<x@remote.example>")[0] == 250
    r.cmd("RSET")
    r.cmd("MAIL FROM:<>")                        # the null sender is not checked
    assert r.cmd("RCPT TO:<u@localhost>")[0] == 250
    r.close()
    r = Raw(instance.port)
    r.cmd("EHLO client.example")
    assert r.cmd("AUTH PLAIN " + plain("joe@example.org", USERS["joe@example.org"]))[0] == 235
    for sender in ("ann@example.org", "anyone@shared.example"):
        r.cmd(f"MAIL FROM:<{sender}>")
        assert r.cmd("RCPT TO:<x@remote.example>")[0] == 250, sender
        r.cmd("RSET")
    r.close()
    assert ("NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 553 5.7.1 <joe@example.org>: Sender address "
            "rejected: not logged in; from=<joe@example.org> to=<u@localhost> proto=ESMTP helo=<client.example>"
            ) in instance.log()


def test_known_and_unauthenticated_variants(instance, dovecot):
    maps = instance.base / "logins"
    maps.write_text("joe@example.org joe@example.org\n")
    started(instance, *dovecot_settings(dovecot), f"smtpd_sender_login_maps = texthash:{maps}",
            "smtpd_sender_restrictions = reject_known_sender_login_mismatch")
    r = Raw(instance.port)
    r.cmd("EHLO client.example")
    assert r.cmd("AUTH PLAIN " + plain("ann@example.org", USERS["ann@example.org"]))[0] == 235
    r.cmd("MAIL FROM:<stranger@example.net>")   # unknown sender: allowed by the "known" variant
    assert r.cmd("RCPT TO:<x@remote.example>")[0] == 250
    r.cmd("RSET")
    r.cmd("MAIL FROM:<joe@example.org>")
    assert r.cmd("RCPT TO:<x@remote.example>")[1] == \
        "553 5.7.1 <joe@example.org>: Sender address rejected: not owned by user ann@example.org"
    r.close()


# --------------------------------------------------------------------------- offering AUTH

def test_offer_rules(make_instance, dovecot):
    off = started(make_instance(), OUTSIDE)
    assert not any("AUTH" in l for l in ehlo_lines(off.port))
    r = Raw(off.port)
    r.cmd("EHLO client.example")
    assert r.cmd("AUTH PLAIN " + plain("joe@example.org", "x"))[1] == "503 5.5.1 Error: authentication not enabled"
    r.close()

    noplain = started(make_instance(), *dovecot_settings(dovecot),
                      "smtpd_sasl_security_options = noanonymous, noplaintext")
    assert "250-AUTH SCRAM-SHA-1 SCRAM-SHA-256 CRAM-MD5" in ehlo_lines(noplain.port)
    r = Raw(noplain.port)
    r.cmd("EHLO client.example")
    assert r.cmd("AUTH PLAIN " + plain("joe@example.org", USERS["joe@example.org"]))[1] == \
        "535 5.7.8 Error: authentication failed: Invalid authentication mechanism"
    r.close()

    exc = started(make_instance(), *dovecot_settings(dovecot), "smtpd_sasl_exceptions_networks = 127.0.0.0/8")
    assert not any("AUTH" in l for l in ehlo_lines(exc.port))

    tls_only = started(make_instance(), *dovecot_settings(dovecot), "smtpd_tls_auth_only = yes")
    assert not any("AUTH" in l for l in ehlo_lines(tls_only.port))
    r = Raw(tls_only.port)
    r.cmd("EHLO client.example")
    assert r.cmd("AUTH PLAIN " + plain("joe@example.org", USERS["joe@example.org"]))[1] == \
        "504 5.5.4 Encryption required for requested authentication mechanism"
    r.close()

    helo = started(make_instance(), *dovecot_settings(dovecot), "smtpd_helo_required = yes")
    r = Raw(helo.port)
    assert r.cmd("AUTH PLAIN " + plain("joe@example.org", USERS["joe@example.org"]))[1] == \
        "503 5.5.1 Error: send HELO/EHLO first"
    r.close()


def test_dovecot_unreachable_is_a_temporary_failure(instance):
    started(instance, "smtpd_sasl_auth_enable = yes", "smtpd_sasl_type = dovecot",
            f"smtpd_sasl_path = {instance.base}/no-such-socket", OUTSIDE, RELAY)
    assert not any("AUTH" in l for l in ehlo_lines(instance.port))
    r = Raw(instance.port)
    r.cmd("EHLO client.example")
    assert r.cmd("AUTH PLAIN " + plain("joe@example.org", "x"))[1] == \
        "535 5.7.8 Error: authentication failed: Invalid authentication mechanism"
    assert r.cmd("NOOP")[0] == 250
    r.close()
    assert "SASL: Connect to Dovecot auth socket" in instance.log()


# --------------------------------------------------------------------------- guessing

def test_wrong_password_a_thousand_times(instance):
    lines = "".join(f"{u}:{{PLAIN}}{p}\n" for u, p in USERS.items())
    started(instance, *builtin_settings(instance, lines), "smtpd_error_sleep_time = 0",
            "smtpd_soft_error_limit = 10", "smtpd_hard_error_limit = 20")
    bad = "AUTH PLAIN " + plain("joe@example.org", "wrong-password")
    fail = "535 5.7.8 Error: authentication failed: (reason unavailable)"
    tries = sessions = 0
    while tries < 1000:
        r = Raw(instance.port)
        sessions += 1
        r.cmd("EHLO client.example")
        for n in range(1, 21):
            tries += 1
            code, text = r.cmd(bad)
            if n < 20:
                assert text == fail, (tries, text)
            else:  # the 20th error ends the session (Postfix: its reply, then the 421)
                if code == 535:
                    code, text = r.reply()
                assert text.startswith("421 4.7.0 ") and text.endswith(" Error: too many errors"), text
                with pytest.raises((EOFError, ConnectionError)):
                    r.cmd("NOOP")
        r.close()
    assert sessions == 50
    # Still serving, and the right password still works.
    with smtplib.SMTP("127.0.0.1", instance.port, local_hostname="client.example", timeout=15) as c:
        c.login("joe@example.org", USERS["joe@example.org"])
    log = instance.log()
    assert log.count("SASL PLAIN authentication failed: (reason unavailable), sasl_username=joe@example.org") == 1000
    assert log.count("too many errors after AUTH from localhost[127.0.0.1]") == 50
    assert "panic" not in log
    assert_no_secrets(instance)


def test_auth_rate_limit(instance):
    lines = "".join(f"{u}:{{PLAIN}}{p}\n" for u, p in USERS.items())
    started(instance, *builtin_settings(instance, lines), "smtpd_client_auth_rate_limit = 3",
            "smtpd_error_sleep_time = 0")
    r = Raw(instance.port)
    r.cmd("EHLO client.example")
    bad = "AUTH PLAIN " + plain("joe@example.org", "wrong-password")
    for _ in range(3):
        assert r.cmd(bad)[0] == 535
    assert r.cmd(bad)[1] == "450 4.7.1 Error: too many AUTH commands from 127.0.0.1"
    # Every AUTH counts, even with the right password.
    assert r.cmd("AUTH PLAIN " + plain("joe@example.org", USERS["joe@example.org"]))[1] == \
        "450 4.7.1 Error: too many AUTH commands from 127.0.0.1"
    r.close()
    instance.wait_for(lambda: "warning: AUTH command rate limit exceeded: 4 from localhost[127.0.0.1] "
                      "for service" in instance.log(), what="rate limit warning")
    assert_no_secrets(instance)


# --------------------------------------------------------------------------- master.cf

def test_submission_like_service_in_master_cf(instance, dovecot):
    """AUTH is off in main.cf and on for one service through -o, as the
    template's commented `submission` entry does."""
    sub_port = free_port()
    started_settings = [OUTSIDE, "smtpd_sasl_type = dovecot", f"smtpd_sasl_path = unix:{dovecot.socket}"]
    master = instance.root / "master.cf"
    master.write_text(master.read_text() + (
        f"127.0.0.1:{sub_port} inet n - n - - smtpd\n"
        "  -o syslog_name=postfix/submission\n"
        "  -o smtpd_sasl_auth_enable=yes\n"
        "  -o smtpd_reject_unlisted_recipient=no\n"
        "  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject\n"))
    started(instance, *started_settings)
    wait_port(sub_port)
    assert not any("AUTH" in l for l in ehlo_lines(instance.port))
    assert "250-AUTH PLAIN LOGIN SCRAM-SHA-1 SCRAM-SHA-256 CRAM-MD5" in ehlo_lines(sub_port)
    r = Raw(sub_port)
    r.cmd("EHLO client.example")
    r.cmd("MAIL FROM:<joe@example.org>")
    assert r.cmd("RCPT TO:<u@localhost>")[1] == \
        "554 5.7.1 <u@localhost>: Recipient address rejected: Access denied"
    r.cmd("RSET")
    assert r.cmd("AUTH PLAIN " + plain("joe@example.org", USERS["joe@example.org"]))[0] == 235
    r.cmd("MAIL FROM:<joe@example.org>")
    assert r.cmd("RCPT TO:<x@remote.example>")[0] == 250
    r.close()


def test_template_submission_entries_match_postfix(instance):
    text = (instance.root / "master.cf").read_text()
    for line in ["#submission inet n       -       n       -       -       smtpd",
                 "#submissions     inet  n       -       n       -       -       smtpd",
                 "#  -o syslog_name=postfix/submission",
                 "#  -o smtpd_tls_security_level=encrypt",
                 "#  -o smtpd_sasl_auth_enable=yes",
                 "#  -o smtpd_tls_auth_only=yes",
                 "#  -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject",
                 "#  -o smtpd_tls_wrappermode=yes",
                 "#  -o syslog_name=postfix/submissions"]:
        assert line in text, line


# --------------------------------------------------------------------------- STARTTLS after AUTH

def test_starttls_forgets_a_plaintext_login(instance):
    """RFC 3207 4.2: after STARTTLS the server forgets what it learned, AUTH included."""
    import ssl

    from test_smtpd_tls import certdir, mint
    if not shutil.which("openssl"):
        pytest.skip("openssl CLI not installed")
    cert, key = mint(certdir(instance), "rsa", "mx.example")
    lines = "".join(f"{u}:{{PLAIN}}{p}\n" for u, p in USERS.items())
    started(instance, *builtin_settings(instance, lines), "smtpd_tls_security_level = may",
            f"smtpd_tls_cert_file = {cert}", f"smtpd_tls_key_file = {key}",
            "smtpd_tls_auth_only = no")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", instance.port, local_hostname="client.example", timeout=30) as c:
        c.login("joe@example.org", USERS["joe@example.org"])
        c.mail("joe@example.org")
        assert c.rcpt("x@remote.example")[0] == 250   # authenticated: relaying allowed
        c.rset()
        assert c.starttls(context=ctx)[0] == 220
        c.ehlo("client.example")
        c.mail("joe@example.org")
        code, text = c.rcpt("x@remote.example")
        assert code == 554 and b"Relay access denied" in text, (code, text)
