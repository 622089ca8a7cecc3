"""smtpd's server TLS: STARTTLS and wrapper mode with real clients.

Clients: `openssl s_client` (-starttls smtp, -connect for wrapper mode, -servername
for SNI, -sess_out/-sess_in for resumption), swaks (-tls, --tls-on-connect), Python
smtplib/ssl, raw sockets for the injection, garbage and stall cases, and Debian's
Postfix as a TLS client (smtp_tls_security_level = encrypt) relaying into Postern.
RSA and ECDSA certificates are minted per test with the openssl CLI.
"""

from __future__ import annotations

import base64
import email
import email.policy
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from postern import free_port
from test_smtpd import started, wait_port

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed")


# ----------------------------------------------------------------------------- helpers

def mint(dirpath: Path, name: str, cn: str, kind: str = "rsa") -> tuple[Path, Path]:
    """A self-signed certificate and key (rsa:2048 or EC P-256), readable by the instance."""
    key, cert = dirpath / f"{name}.key", dirpath / f"{name}.crt"
    newkey = ["-newkey", "rsa:2048"] if kind == "rsa" else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    subprocess.run([OPENSSL, "req", "-x509", *newkey, "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", f"/CN={cn}", "-addext", f"subjectAltName=DNS:{cn}"],
                   check=True, capture_output=True, timeout=60)
    for p in (key, cert):
        p.chmod(0o644)
    return cert, key


def certdir(inst) -> Path:
    d = inst.base / "tls"
    d.mkdir(exist_ok=True)
    d.chmod(0o755)
    return d


def add_wrapper_service(inst, *overrides: str) -> int:
    """A second smtpd listener with smtpd_tls_wrappermode = yes (port 465 style)."""
    port = free_port()
    extra = "".join(f"\n  -o {o}" for o in overrides)
    with open(inst.root / "master.cf", "a") as f:
        f.write(f"\n127.0.0.1:{port} inet n - n - - smtpd\n  -o smtpd_tls_wrappermode=yes{extra}\n")
    return port


def client_ctx() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def s_client(port: int, *args: str, script: bytes = b"EHLO client.example\r\nQUIT\r\n",
             starttls: bool = True, timeout: float = 30) -> str:
    cmd = [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-ign_eof", *args]
    if starttls:
        cmd[2:2] = ["-starttls", "smtp"]
    r = subprocess.run(cmd, input=script, capture_output=True, timeout=timeout)
    return r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


def peer_cert_cn(out: str) -> str | None:
    m = re.search(r"subject=.*?CN ?= ?([^\s,/]+)", out)
    return m.group(1) if m else None


class Raw:
    """Line-oriented SMTP over a socket that can be upgraded to TLS in place."""

    def __init__(self, port: int):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.buf = b""
        self.greeting = self.reply()

    def _line(self) -> bytes:
        while b"\n" not in self.buf:
            chunk = self.s.recv(4096)
            if not chunk:
                raise EOFError("server closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            line = self._line().decode(errors="replace").rstrip("\r")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return int(lines[-1][:3]), "\n".join(lines)

    def cmd(self, text: str | bytes) -> tuple[int, str]:
        self.s.sendall((text if isinstance(text, bytes) else text.encode()) + b"\r\n")
        return self.reply()

    def starttls(self, sni: str | None = None) -> None:
        assert self.buf == b"", f"plaintext left before TLS: {self.buf!r}"
        self.s = client_ctx().wrap_socket(self.s, server_hostname=sni)

    def closed_by_server(self, timeout: float = 15) -> bool:
        self.s.settimeout(timeout)
        try:
            while True:
                if not self.s.recv(4096):
                    return True
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return True
        except socket.timeout:
            return False

    def close(self) -> None:
        self.s.close()


def tls_instance(instance, *settings: str, kinds=("rsa",)):
    d = certdir(instance)
    conf = ["smtpd_tls_security_level = may", "smtpd_tls_loglevel = 1"]
    if "rsa" in kinds:
        cert, key = mint(d, "rsa", "mx.test.example")
        conf += [f"smtpd_tls_cert_file = {cert}", f"smtpd_tls_key_file = {key}"]
    if "ecdsa" in kinds:
        cert, key = mint(d, "ec", "ec.test.example", "ecdsa")
        conf += [f"smtpd_tls_eccert_file = {cert}", f"smtpd_tls_eckey_file = {key}"]
    return conf + list(settings)


def read_msg(path: Path) -> email.message.Message:
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)


# ----------------------------------------------------------------------------- tests

def test_smtplib_starttls_received_header_and_log(instance):
    inst = started(instance, *tls_instance(instance, "smtpd_tls_received_header = yes"))
    with smtplib.SMTP("127.0.0.1", inst.port, local_hostname="client.example", timeout=15) as c:
        code, caps = c.ehlo()
        assert code == 250 and b"STARTTLS" in caps, caps
        assert c.starttls(context=client_ctx())[0] == 220
        code, caps = c.ehlo()
        assert code == 250 and b"STARTTLS" not in caps, caps
        assert c.sendmail("from@example.org", ["tls@localhost"], b"Subject: tls\r\n\r\nover tls\r\n") == {}
    msg = read_msg(inst.wait_for_mail("tls", 1)[0])
    received = msg.get_all("Received")[0]
    lines = [l.strip() for l in received.splitlines()]
    assert lines[0] == "from client.example (localhost [127.0.0.1])", received
    assert lines[1].startswith("(using TLSv1.3 with cipher TLS_"), received
    assert re.fullmatch(r"key-exchange X25519 server-signature RSA-PSS \(2048 bits\) server-digest SHA256\)",
                        lines[2]), received
    assert lines[3] == "(No client certificate requested)", received
    assert "with ESMTPS id" in lines[4], received
    log = inst.log()
    assert re.search(r"smtpd\[\d+\]: Anonymous TLS connection established from localhost\[127\.0\.0\.1\]: "
                     r"TLSv1\.3 with cipher TLS_\w+ \((256/256|128/128) bits\) key-exchange X25519 "
                     r"server-signature RSA-PSS \(2048 bits\) server-digest SHA256\n", log), log
    assert "disconnect from localhost[127.0.0.1] ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7" in log


def test_rsa_and_ecdsa_chosen_by_client_sigalgs(instance):
    inst = started(instance, *tls_instance(instance, kinds=("rsa", "ecdsa")))
    out = s_client(inst.port, "-sigalgs", "ECDSA+SHA256")
    assert "Verify return code" in out and peer_cert_cn(out) == "ec.test.example", out
    out = s_client(inst.port, "-sigalgs", "RSA-PSS+SHA256:rsa_pss_pss_sha256")
    assert peer_cert_cn(out) == "mx.test.example", out
    # TLS 1.2 with an RSA-only client: ECDHE-RSA suite.
    out = s_client(inst.port, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384")
    assert "ECDHE-RSA-AES" in out and peer_cert_cn(out) == "mx.test.example", out
    assert "server-signature ECDSA (prime256v1)" in inst.log(), inst.log_excerpt()
    assert re.search(r"Anonymous TLS connection established from \S+: TLSv1\.2 with cipher "
                     r"ECDHE-RSA-AES(128|256)-GCM-SHA(256|384) \(\d+/\d+ bits\)\n", inst.log()), inst.log_excerpt()


def test_chain_files_protocols_and_exclusions(instance):
    d = certdir(instance)
    cert, key = mint(d, "chain", "chain.test.example")
    chain = d / "chain.pem"
    chain.write_bytes(key.read_bytes() + cert.read_bytes())
    chain.chmod(0o644)
    inst = started(instance, "smtpd_tls_security_level = may", "smtpd_tls_loglevel = 1",
                   f"smtpd_tls_chain_files = {chain}", "smtpd_tls_protocols = !SSLv2, !SSLv3, !TLSv1, <=TLSv1.2",
                   "smtpd_tls_exclude_ciphers = AES128, CHACHA20")
    out = s_client(inst.port)
    assert "Protocol  : TLSv1.2" in out or "TLSv1.2" in out, out
    assert "ECDHE-RSA-AES256-GCM-SHA384" in out and peer_cert_cn(out) == "chain.test.example", out
    out = s_client(inst.port, "-tls1_3")
    assert "ECDHE-RSA-AES256" not in out and "Cipher is (NONE)" in out, out
    out = s_client(inst.port, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
    assert "Cipher is (NONE)" in out, out
    assert "SSL_accept error from localhost[127.0.0.1]: -1" in inst.log()


def test_swaks_starttls_and_tls_on_connect(instance):
    if not shutil.which("swaks"):
        pytest.skip("swaks not installed")
    conf = tls_instance(instance)
    wport = add_wrapper_service(instance)
    inst = started(instance, *conf)
    wait_port(wport)
    r = subprocess.run(["swaks", "-s", "127.0.0.1", "-p", str(inst.port), "-tls", "-f", "a@example.org",
                        "-t", "sw1@localhost"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "TLS started" in r.stdout, r.stdout + r.stderr
    r = subprocess.run(["swaks", "-s", "127.0.0.1", "-p", str(wport), "--tls-on-connect", "-f", "a@example.org",
                        "-t", "sw2@localhost"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "TLS started" in r.stdout, r.stdout + r.stderr
    # Over implicit TLS the EHLO reply offers no STARTTLS.
    assert "250-STARTTLS" not in r.stdout.split("TLS started", 1)[1], r.stdout
    for u in ("sw1", "sw2"):
        assert "with ESMTPS id" in read_msg(inst.wait_for_mail(u, 1)[0]).get_all("Received")[0]
    out = s_client(wport, starttls=False, script=b"QUIT\r\n")
    assert "220 " in out and "221 2.0.0 Bye" in out, out


def test_pipelined_plaintext_after_starttls_is_discarded(instance):
    inst = started(instance, *tls_instance(instance))
    c = Raw(inst.port)
    assert c.cmd("EHLO client.example")[0] == 250
    # The classic injection: commands sent in the same packet as STARTTLS.
    c.s.sendall(b"STARTTLS\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<evil@localhost>\r\n")
    assert c.reply()[0] == 220
    c.buf = b""  # whatever the client pipelined stays unanswered: the server discarded it
    c.starttls()
    code, text = c.cmd("EHLO client.example")
    assert code == 250 and "STARTTLS" not in text, text
    # Had the injected MAIL been run, this one would be "nested"; had RCPT, DATA would work.
    assert c.cmd("DATA") == (503, "503 5.5.1 Error: need RCPT command")
    assert c.cmd("MAIL FROM:<good@example.org>") == (250, "250 2.1.0 Ok")
    assert c.cmd("QUIT")[0] == 221
    c.close()
    assert "improper command pipelining after STARTTLS from localhost[127.0.0.1]: MAIL FROM" in inst.log()


def test_ehlo_state_resets_after_starttls(instance):
    inst = started(instance, *tls_instance(instance, "smtpd_helo_required = yes"))
    c = Raw(inst.port)
    assert c.cmd("EHLO client.example")[0] == 250
    assert c.cmd("MAIL FROM:<a@example.org>")[0] == 250
    assert c.cmd("STARTTLS")[0] == 220
    c.starttls()
    # The transaction is gone (no "nested MAIL command"), and so is the EHLO:
    # with smtpd_helo_required the client must greet again.
    assert c.cmd("MAIL FROM:<a@example.org>") == (503, "503 5.5.1 Error: send HELO/EHLO first")
    assert c.cmd("EHLO again.example")[0] == 250
    assert c.cmd("MAIL FROM:<a@example.org>") == (250, "250 2.1.0 Ok")
    assert c.cmd("STARTTLS") == (554, "554 5.5.1 Error: TLS already active")
    c.close()


def test_handshake_garbage_plaintext_and_stall(instance):
    inst = started(instance, *tls_instance(instance, "smtpd_starttls_timeout = 2s"))
    # Garbage instead of a ClientHello.
    c = Raw(inst.port)
    assert c.cmd("STARTTLS")[0] == 220
    c.s.sendall(b"\x16\x03\x01\x00\x05garbage garbage garbage\r\n")
    assert c.closed_by_server()
    c.close()
    # A client that goes on in plaintext.
    c = Raw(inst.port)
    assert c.cmd("EHLO x")[0] == 250
    assert c.cmd("STARTTLS")[0] == 220
    c.s.sendall(b"MAIL FROM:<a@example.org>\r\n")
    assert c.closed_by_server()
    c.close()
    # A client that never starts the handshake: cut after smtpd_starttls_timeout.
    c = Raw(inst.port)
    assert c.cmd("STARTTLS")[0] == 220
    assert c.closed_by_server(timeout=20)
    c.close()
    log = inst.wait_for(lambda: (l := inst.log()).count("lost connection after STARTTLS") >= 3 and l,
                        what="three failed handshakes logged")
    assert log.count("SSL_accept error from localhost[127.0.0.1]: -1") >= 2, log
    assert "warning: TLS library problem:" in log
    assert "SSL_accept error from localhost[127.0.0.1]: Connection timed out" in log
    assert "starttls=0/1" in log
    # The server still serves.
    assert Raw(inst.port).cmd("QUIT")[0] == 221
    assert "panic" not in log


def test_encrypt_level_refuses_mail_before_starttls(instance):
    inst = started(instance, *tls_instance(instance), "smtpd_tls_security_level = encrypt")
    c = Raw(inst.port)
    assert c.cmd("EHLO client.example")[0] == 250
    for cmd in ("MAIL FROM:<a@example.org>", "RCPT TO:<b@localhost>", "DATA", "VRFY root", "RSET", "ETRN x"):
        assert c.cmd(cmd) == (530, "530 5.7.0 Must issue a STARTTLS command first"), cmd
    assert c.cmd("NOOP")[0] == 250
    assert c.cmd("STARTTLS")[0] == 220
    c.starttls()
    assert c.cmd("EHLO client.example")[0] == 250
    assert c.cmd("MAIL FROM:<a@example.org>")[0] == 250
    c.close()
    # Legacy smtpd_enforce_tls does the same.
    inst.run("postconf", "-e", "smtpd_tls_security_level =", "smtpd_enforce_tls = yes")
    inst.reload()
    wait_port(inst.port)
    c = Raw(inst.port)
    assert c.cmd("EHLO client.example")[0] == 250
    assert c.cmd("MAIL FROM:<a@example.org>")[0] == 530
    c.close()


def test_sni_maps(instance):
    d = certdir(instance)
    files_cert, files_key = mint(d, "sni-files", "files.example")
    b64_cert, b64_key = mint(d, "sni-b64", "b64.example")
    chain = d / "files.pem"
    chain.write_bytes(files_key.read_bytes() + files_cert.read_bytes())
    chain.chmod(0o644)
    # `postmap -F`-style value: base64 of the key + chain PEM text.
    value = base64.b64encode(b64_key.read_bytes() + b64_cert.read_bytes()).decode()
    table = d / "sni"
    table.write_text(f"files.example {chain}\n.wild.example {value}\n")
    table.chmod(0o644)
    inst = started(instance, *tls_instance(instance, f"tls_server_sni_maps = texthash:{table}"))
    assert peer_cert_cn(s_client(inst.port, "-servername", "files.example")) == "files.example"
    assert peer_cert_cn(s_client(inst.port, "-servername", "a.b.wild.example")) == "b64.example"
    assert peer_cert_cn(s_client(inst.port, "-servername", "other.example")) == "mx.test.example"
    assert peer_cert_cn(s_client(inst.port, "-noservername")) == "mx.test.example"
    log = inst.log()
    assert "Anonymous TLS connection established from localhost[127.0.0.1] to files.example: TLSv1.3" in log
    assert "TLS SNI other.example from localhost[127.0.0.1] not matched, using default chain" in log


def test_session_resumption(instance):
    inst = started(instance, *tls_instance(instance))
    sess = certdir(inst) / "sess.pem"
    script = b"EHLO client.example\r\n"
    # -ign_eof with a short pause so the TLS 1.3 ticket arrives before QUIT.
    for proto in ("-tls1_3", "-tls1_2"):
        if sess.exists():
            sess.unlink()
        first = s_client(inst.port, proto, "-sess_out", str(sess), script=script + b"QUIT\r\n")
        assert "New, TLSv1." in first, first
        second = s_client(inst.port, proto, "-sess_in", str(sess), script=script + b"QUIT\r\n")
        assert "Reused, TLSv1." in second, (proto, second)


def test_missing_key_disables_tls_without_crash_loop(instance):
    wport = add_wrapper_service(instance)
    inst = started(instance, "smtpd_tls_security_level = may", "smtpd_tls_cert_file = /nonexistent/cert.pem",
                   "smtpd_tls_key_file = /nonexistent/key.pem")
    c = Raw(inst.port)
    code, text = c.cmd("EHLO client.example")
    assert code == 250 and "STARTTLS" not in text, text
    assert c.cmd("STARTTLS") == (454, "454 4.7.0 TLS not available due to local problem")
    assert c.cmd("QUIT")[0] == 221
    c.close()
    wait_port(wport)
    w = socket.create_connection(("127.0.0.1", wport), timeout=15)
    w.settimeout(15)
    assert w.recv(100) == b"", "wrapper-mode session without keys must be dropped"
    w.close()
    log = inst.log()
    assert 'warning: cannot get RSA certificate from file "/nonexistent/cert.pem"' in log, log
    assert "Wrapper-mode request dropped from localhost[127.0.0.1] for service" in log, log
    # Still serving, no restart storm.
    assert Raw(inst.port).cmd("QUIT")[0] == 221
    assert "panic" not in log and "throttling" not in log


def test_reload_loads_new_certificates_and_keeps_sessions(instance):
    d = certdir(instance)
    cert, key = mint(d, "cur", "old.example")
    inst = started(instance, "smtpd_tls_security_level = may", f"smtpd_tls_cert_file = {cert}",
                   f"smtpd_tls_key_file = {key}")
    old = smtplib.SMTP("127.0.0.1", inst.port, local_hostname="client.example", timeout=15)
    old.starttls(context=client_ctx())
    old.ehlo()
    old_cert = old.sock.getpeercert(binary_form=True)
    assert old.mail("a@example.org")[0] == 250 and old.rcpt("kept@localhost")[0] == 250
    # New key and certificate in place of the old files, then reload.
    new_cert, new_key = mint(d, "next", "new.example")
    os.replace(new_cert, cert)
    os.replace(new_key, key)
    inst.reload()
    def fresh_cert():
        out = s_client(inst.port)
        return peer_cert_cn(out) == "new.example"
    inst.wait_for(fresh_cert, what="a new smtpd process serving the new certificate")
    # The session that started before the reload finishes on its old process.
    assert old.data(b"Subject: kept\r\n\r\nsurvived the reload\r\n")[0] == 250
    assert old.sock.getpeercert(binary_form=True) == old_cert
    old.quit()
    assert "survived the reload" in inst.wait_for_mail("kept", 1)[0].read_text()


def test_postfix_relays_into_postern_with_encrypt(instance):
    if os.geteuid() != 0 or not Path("/usr/sbin/postfix").exists():
        pytest.skip("a private Postfix instance needs root and Debian's postfix")
    from test_postfix_peer import PostfixPeer, wait_until
    inst = started(instance, *tls_instance(instance, "smtpd_tls_received_header = yes"),
                   "smtpd_tls_security_level = encrypt")
    peer = PostfixPeer(f"[127.0.0.1]:{inst.port}")
    try:
        peer.setup()
        main_cf = peer.conf / "main.cf"
        main_cf.write_text(main_cf.read_text().replace("smtp_tls_security_level = none",
                                                       "smtp_tls_security_level = encrypt\n"
                                                       "smtp_tls_loglevel = 1"))
        peer.start()
        peer.sendmail(["-f", "sender@test.example", "viatls@localhost"],
                      b"From: <sender@test.example>\nTo: <viatls@localhost>\nSubject: via postfix tls\n\nhello\n")
        got = wait_until(lambda: inst.new_messages("viatls"), "mail relayed by Postfix over TLS", peer, inst)
        received = " ".join(read_msg(got[0]).get_all("Received")[0].split())
        assert "(using TLSv1.3 with cipher" in received and "with ESMTPS id" in received, received
        assert re.search(r"(Anonymous|Untrusted) TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:\d+: TLSv1\.3",
                         peer.log()), peer.log()[-3000:]
        assert "status=sent" in peer.log()
    finally:
        peer.close()
