"""smtpd with real clients: Python smtplib, swaks and raw sockets."""

from __future__ import annotations

import email
import email.policy
import shutil
import smtplib
import socket
import subprocess
import time

import pytest


def started(instance, *settings: str):
    if settings:
        instance.run("postconf", "-e", *settings)
    instance.start()
    wait_port(instance.port)
    return instance


def wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"port {port} not listening")


class Raw:
    """A line-oriented SMTP client that shows exactly what the server says."""

    def __init__(self, port: int):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.f = self.s.makefile("rb")
        self.greeting = self.reply()

    def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            line = self.f.readline()
            if not line:
                raise EOFError("server closed the connection")
            lines.append(line.decode(errors="replace").rstrip("\r\n"))
            if len(line) < 4 or line[3:4] != b"-":
                break
        return int(lines[-1][:3]), "\n".join(lines)

    def cmd(self, text: str | bytes) -> tuple[int, str]:
        data = text if isinstance(text, bytes) else text.encode()
        self.s.sendall(data + b"\r\n")
        return self.reply()

    def send(self, data: bytes) -> None:
        self.s.sendall(data)

    def close(self) -> None:
        # The makefile() object holds its own reference to the socket.
        self.f.close()
        self.s.close()


def test_smtplib_delivery_and_received_header(instance):
    inst = started(instance)
    with smtplib.SMTP("127.0.0.1", inst.port, local_hostname="client.example") as c:
        code, caps = c.ehlo()
        assert code == 250
        for kw in (b"PIPELINING", b"SIZE", b"8BITMIME", b"ENHANCEDSTATUSCODES", b"DSN", b"SMTPUTF8", b"CHUNKING"):
            assert kw in caps, caps
        refused = c.sendmail("from@example.org", ["rcpt@localhost"], b"Subject: smtp\r\n\r\nline\r\n.dot\r\n")
        assert refused == {}
    inst.wait_for_mail("rcpt", 1)
    msg = email.message_from_bytes(inst.new_messages("rcpt")[0].read_bytes(), policy=email.policy.compat32)
    received = msg.get_all("Received")[0]
    assert "from client.example (localhost [127.0.0.1])" in received, received
    assert "with ESMTP id" in received and "for <rcpt@localhost>" in received, received
    assert msg.get_payload().replace("\r\n", "\n") == "line\n.dot\n"
    log = inst.log()
    assert "connect from localhost[127.0.0.1]" in log
    assert "client=localhost[127.0.0.1]" in log
    assert "disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5" in log, log


def test_swaks_pipelining(instance):
    if not shutil.which("swaks"):
        pytest.skip("swaks not installed")
    inst = started(instance)
    r = subprocess.run(["swaks", "-s", "127.0.0.1", "-p", str(inst.port), "-f", "a@example.org",
                        "-t", "p1@localhost,p2@localhost", "--pipeline", "--silent", "2"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    inst.wait_for_mail("p1", 1)
    inst.wait_for_mail("p2", 1)


def test_command_sequence_and_syntax_errors(instance):
    inst = started(instance)
    c = Raw(inst.port)
    assert c.greeting[0] == 220 and "ESMTP" in c.greeting[1]
    assert c.cmd("RCPT TO:<a@localhost>") == (503, "503 5.5.1 Error: need MAIL command")
    # As Postfix 3.7.11: DATA without a transaction asks for RCPT.
    assert c.cmd("DATA") == (503, "503 5.5.1 Error: need RCPT command")
    assert c.cmd("EHLO x")[0] == 250
    assert c.cmd("MAIL FROM:<a@example.org>") == (250, "250 2.1.0 Ok")
    assert c.cmd("MAIL FROM:<b@example.org>") == (503, "503 5.5.1 Error: nested MAIL command")
    assert c.cmd("DATA") == (554, "554 5.5.1 Error: no valid recipients")
    assert c.cmd("RCPT TO:<u@localhost") [0] == 501
    assert c.cmd("BOGUS") == (500, "500 5.5.2 Error: command not recognized")
    assert c.cmd(b"MAIL\x00FROM") [0] in (500, 501, 502)
    assert c.cmd("RSET") == (250, "250 2.0.0 Ok")
    assert c.cmd("NOOP") == (250, "250 2.0.0 Ok")
    assert c.cmd("QUIT") == (221, "221 2.0.0 Bye")
    c.close()


def test_huge_line_and_binary_junk(instance):
    inst = started(instance)
    c = Raw(inst.port)
    # As Postfix: an over-long line is cut at line_length_limit and the rest dropped.
    code, _ = c.cmd(b"EHLO " + b"x" * (1 << 20))
    assert code == 250, code
    junk = bytes(b for b in range(1, 32) if b not in (10, 13)) + b"\xff\xfe junk"
    code, _ = c.cmd(b"X" + junk)
    assert 500 <= code < 600
    assert c.cmd("NOOP")[0] == 250, "server stopped serving after junk"
    # As Postfix (smtpd_forbidden_commands): a line not starting with a letter is non-SMTP.
    assert c.cmd(junk) == (221, "221 2.7.0 Error: I can break rules, too. Goodbye.")
    c.close()
    # Another client is served normally.
    d = Raw(inst.port)
    assert d.cmd("QUIT")[0] == 221
    d.close()


def test_hard_error_limit(instance):
    inst = started(instance, "smtpd_hard_error_limit = 3", "smtpd_soft_error_limit = 10")
    c = Raw(inst.port)
    # As Postfix: the third error gets its reply, then the 421 and the end.
    codes = [c.cmd("BOGUS")[0] for _ in range(3)]
    assert codes == [500, 500, 500], codes
    assert c.reply()[0] == 421
    with pytest.raises((EOFError, ConnectionError)):
        c.cmd("NOOP")
    c.close()


def test_not_an_open_relay(instance):
    """From outside mynetworks nothing but local domains is accepted."""
    inst = started(instance, "mynetworks = 192.0.2.0/24")
    battery = ["u@remote.example", "u%remote.example@localhost", "remote.example!u@localhost",
               '"u@remote.example"@localhost', "u@[192.0.2.1]", "@localhost:u@remote.example",
               "u%remote.example%localhost@localhost", "u@remote.example."]
    c = Raw(inst.port)
    c.cmd("EHLO client.example")
    assert c.cmd("MAIL FROM:<s@remote.example>")[0] == 250
    for addr in battery:
        code, text = c.cmd(f"RCPT TO:<{addr}>")
        assert code >= 400, f"{addr} accepted: {text}"
    assert c.cmd("RCPT TO:<u@localhost>")[0] == 250
    c.close()


def test_size_limits(instance):
    inst = started(instance, "message_size_limit = 20000")
    c = Raw(inst.port)
    c.cmd("EHLO x")
    assert c.cmd("MAIL FROM:<a@x.example> SIZE=999999") == (552, "552 5.3.4 Message size exceeds fixed limit")
    # As Postfix: the refused SIZE stays in force until RSET.
    assert c.cmd("MAIL FROM:<a@x.example>")[0] == 552
    assert c.cmd("RSET")[0] == 250
    assert c.cmd("MAIL FROM:<a@x.example>")[0] == 250
    assert c.cmd("RCPT TO:<big@localhost>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 40)
    assert c.cmd(".")[0] == 552
    assert c.cmd("QUIT")[0] == 221
    assert not inst.new_messages("big")


def test_bdat_chunking(instance):
    inst = started(instance)
    c = Raw(inst.port)
    c.cmd("EHLO x")
    assert c.cmd("MAIL FROM:<a@x.example>")[0] == 250
    assert c.cmd("RCPT TO:<chunk@localhost>")[0] == 250
    part1 = b"Subject: bdat\r\n\r\nfirst "
    part2 = b"second\r\n.not a terminator\r\n"
    c.send(b"BDAT %d\r\n" % len(part1) + part1)
    assert c.reply()[0] == 250
    c.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
    code, text = c.reply()
    assert code == 250 and "queued as" in text, text
    c.cmd("QUIT")
    inst.wait_for_mail("chunk", 1)
    body = inst.new_messages("chunk")[0].read_bytes()
    assert b"first second\n.not a terminator\n" in body.replace(b"\r\n", b"\n")


def test_dsn_parameters_reach_the_bounce(instance):
    inst = started(instance)
    c = Raw(inst.port)
    c.cmd("EHLO x")
    assert c.cmd("MAIL FROM:<dsnsender@localhost> RET=HDRS ENVID=env+2Did42")[0] == 250
    assert c.cmd("RCPT TO:<loop@localhost> NOTIFY=FAILURE ORCPT=rfc822;orig@example.org")[0] == 250
    assert c.cmd("RCPT TO:<quiet@localhost> NOTIFY=NEVER")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(b"Delivered-To: loop@localhost\r\nDelivered-To: quiet@localhost\r\nSubject: dsn\r\n\r\nsecret body\r\n")
    assert c.cmd(".")[0] == 250
    c.cmd("QUIT")
    inst.wait_for_mail("dsnsender", 1)
    raw = inst.new_messages("dsnsender")[0].read_bytes()
    assert b"Original-Envelope-Id: env-id42" in raw, raw
    assert b"Original-Recipient: rfc822;orig@example.org" in raw or b"Original-Recipient: rfc822; orig@example.org" in raw, raw
    assert b"quiet@localhost" not in raw.split(b"message/delivery-status")[1].split(b"text/rfc822-headers")[0]
    assert b"secret body" not in raw, "RET=HDRS must not return the body"


def test_bare_newline_smuggling_is_not_a_terminator(instance):
    inst = started(instance, "smtpd_forbid_bare_newline = normalize")
    c = Raw(inst.port)
    c.cmd("EHLO x")
    c.cmd("MAIL FROM:<a@x.example>")
    c.cmd("RCPT TO:<smug@localhost>")
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: s\r\n\r\nbody\n.\nMAIL FROM:<evil@x.example>\r\n")
    code, text = c.cmd(".")
    assert code == 250, text
    c.cmd("QUIT")
    inst.wait_for_mail("smug", 1)
    assert b"MAIL FROM:<evil@x.example>" in inst.new_messages("smug")[0].read_bytes()


def test_anvil_connection_count_and_message_rate(instance):
    inst = started(instance, "smtpd_client_event_limit_exceptions =",
                   "smtpd_client_connection_count_limit = 2", "smtpd_client_message_rate_limit = 2")
    # wait_port's probe connection counts until smtpd has seen it go: wait for that.
    deadline = time.monotonic() + 10
    while "disconnect from" not in inst.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    for _ in range(20):
        a, b = Raw(inst.port), Raw(inst.port)
        if b.greeting[0] == 220:
            break
        a.close()
        b.close()
        time.sleep(0.2)
    assert a.greeting[0] == 220 and b.greeting[0] == 220
    c = Raw(inst.port)
    assert c.greeting[0] == 421 and "too many connections from 127.0.0.1" in c.greeting[1], c.greeting
    c.close()
    a.cmd("EHLO x")
    for i in range(2):
        assert a.cmd(f"MAIL FROM:<m{i}@x.example>")[0] == 250
        assert a.cmd("RSET")[0] == 250
    assert a.cmd("MAIL FROM:<m3@x.example>") == (450, "450 4.7.1 Error: too much mail from 127.0.0.1")
    a.cmd("QUIT")
    b.cmd("QUIT")
    a.close()
    b.close()
    log = inst.log()
    assert "Connection concurrency limit exceeded: 3 from localhost[127.0.0.1] for service smtp" in log, log


def test_xclient_and_xforward(instance):
    inst = started(instance)
    c = Raw(inst.port)
    c.cmd("EHLO x")
    assert c.cmd("XCLIENT ADDR=192.0.2.9") == (550, "550 5.7.0 Error: insufficient authorization")
    c.cmd("QUIT")
    inst.stop()
    inst.run("postconf", "-e", "smtpd_authorized_xclient_hosts = 127.0.0.0/8",
             "smtpd_authorized_xforward_hosts = 127.0.0.0/8")
    started(inst)
    c = Raw(inst.port)
    code, caps = c.cmd("EHLO x")
    assert "XCLIENT" in caps and "XFORWARD" in caps, caps
    code, text = c.cmd("XCLIENT NAME=proxied.example ADDR=192.0.2.9 HELO=far.example")
    assert code == 220, text
    c.cmd("EHLO far.example")
    assert c.cmd("XFORWARD NAME=orig.example ADDR=198.51.100.7")[0] == 250
    c.cmd("MAIL FROM:<a@x.example>")
    c.cmd("RCPT TO:<xc@localhost>")
    c.cmd("DATA")
    assert c.cmd(b"Subject: xc\r\n\r\nhi\r\n.")[0] == 250
    c.cmd("QUIT")
    inst.wait_for_mail("xc", 1)
    raw = inst.new_messages("xc")[0].read_bytes()
    assert b"(orig.example [198.51.100.7])" in raw, raw
    assert "connect from localhost[127.0.0.1]" in inst.log()


def test_qmqpd_with_qmqp_source(instance):
    if not shutil.which("qmqp-source"):
        pytest.skip("qmqp-source (Debian postfix) not installed")
    from postern import free_port
    port = free_port()
    with open(instance.root / "master.cf", "a") as f:
        f.write(f"127.0.0.1:{port} inet n - n - - qmqpd\n")
    inst = started(instance, "qmqpd_authorized_clients = 127.0.0.1")
    wait_port(port)
    r = subprocess.run(["qmqp-source", "-c", "-m", "3", "-f", "qs@example.org", "-t", "qmqp@localhost",
                        f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    inst.wait_for_mail("qmqp", 3)
    raw = inst.new_messages("qmqp")[0].read_bytes()
    assert b"with QMQP id" in raw, raw


def test_sendmail_bs_while_stopped(instance):
    """sendmail -bs: an SMTP session on stdin/stdout; works with master down."""
    session = (b"EHLO client\r\nMAIL FROM:<bs@localhost>\r\nRCPT TO:<bsrcpt@localhost>\r\nDATA\r\n"
               b"Subject: bs\r\n\r\nover stdio\r\n.\r\nQUIT\r\n")
    r = instance.run("sendmail", "-bs", input=session)
    out = r.stdout.decode()
    assert out.startswith("220 "), out
    assert "250 2.0.0 Ok: queued" in out and "221 2.0.0 Bye" in out, out
    instance.start()
    instance.wait_for_mail("bsrcpt", 1)


def test_ten_thousand_recipients(instance):
    """10,000 pipelined RCPTs: 1000 accepted (smtpd_recipient_limit), the rest 452."""
    inst = started(instance)
    c = Raw(inst.port)
    c.cmd("EHLO x")
    c.cmd("MAIL FROM:<many@x.example>")
    c.send(b"RCPT TO:<many@localhost>\r\n" * 10000)
    codes = [c.reply()[0] for _ in range(10000)]
    assert codes.count(250) == 1000 and codes.count(452) == 9000, (codes.count(250), codes.count(452))
    assert c.cmd("DATA")[0] == 354
    assert c.cmd(b"Subject: many\r\n\r\nx\r\n.")[0] == 250
    c.cmd("QUIT")
    inst.wait_for_mail("many", 1)


def test_client_vanishes_mid_data(instance):
    inst = started(instance)
    c = Raw(inst.port)
    c.cmd("EHLO x")
    c.cmd("MAIL FROM:<gone@x.example>")
    c.cmd("RCPT TO:<gone@localhost>")
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: half\r\n\r\npartial")
    c.close()
    d = Raw(inst.port)
    assert d.cmd("QUIT")[0] == 221
    inst.wait_for(lambda: "lost connection after DATA" in inst.log(), what="lost connection logged")
    time.sleep(0.5)
    assert not inst.new_messages("gone")
    assert not [p for p in inst.queue_files() if "/incoming/" in str(p) or "/active/" in str(p)]


def test_slow_clients_do_not_block_others(instance):
    """Slowloris: many clients dripping a byte a second; fresh clients still get
    a 220, and with smtpd_per_request_deadline the drippers are cut off."""
    inst = started(instance, "smtpd_timeout = 3s", "smtpd_per_request_deadline = yes")
    slow = [Raw(inst.port) for _ in range(50)]
    start = time.monotonic()
    for _ in range(5):
        for s in slow:
            try:
                s.send(b"N")
            except OSError:
                pass
        fresh = Raw(inst.port)
        assert fresh.greeting[0] == 220
        assert fresh.cmd("QUIT")[0] == 221
        fresh.close()
        time.sleep(1)
    assert time.monotonic() - start >= 4
    closed = 0
    for s in slow:
        try:
            s.s.settimeout(5)
            if s.reply()[0] == 421:
                closed += 1
        except (EOFError, OSError):
            closed += 1
        s.close()
    assert closed == 50, closed


def test_five_thousand_idle_connections(instance):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 6000:
        pytest.skip(f"descriptor hard limit {hard} too low for this test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 6000), hard))
    inst = started(instance, "smtpd_client_connection_count_limit = 0")
    conns = []
    try:
        for _ in range(5000):
            s = socket.create_connection(("127.0.0.1", inst.port), timeout=30)
            conns.append(s)
        for s in conns[::500]:
            assert s.recv(512).startswith(b"220")
        fresh = Raw(inst.port)
        assert fresh.cmd("QUIT")[0] == 221
        rss = 0
        for p in inst.processes():
            try:
                name = open(f"/proc/{p.pid}/cmdline", "rb").read().split(b"\0")[0]
                if name == b"smtpd":
                    for line in open(f"/proc/{p.pid}/status"):
                        if line.startswith("VmRSS:"):
                            rss += int(line.split()[1])
            except OSError:
                pass
        assert 0 < rss < 300 * 1024, f"smtpd RSS {rss} kB for 5000 idle connections"
        print(f"5000 idle connections: smtpd RSS {rss} kB")
    finally:
        for s in conns:
            s.close()
