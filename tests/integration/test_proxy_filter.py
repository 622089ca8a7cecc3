"""test_proxy_filter.py -- the before-queue proxy filter (issue 14 §3): `smtpd_proxy_filter`,
`smtpd_proxy_options = speed_adjust`, `smtpd_proxy_ehlo`, as Postfix's SMTPD_PROXY_README.

The filter is a small SMTP server in this process (a thread on a free loopback port, or on
a unix socket below the queue directory): it
answers EHLO offering XFORWARD, relays MAIL/RCPT/XFORWARD to the instance's reinjection
smtpd (a second master.cf service, `-o smtpd_proxy_filter=`), answers DATA itself, and at
the end of data either rejects (the message says REJECTME) or sends the message downstream
behind its own `X-Filtered:` header and relays the downstream reply. The mail is queued
only through that reinjection. Every wait is bounded; the filter thread stops at the end.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import smtplib
import socket
import subprocess
import threading
import time

import pytest

from postern import free_port
from test_message_diff import HOST, RCPT, PostfixOracle, _listening, normalise
from test_postfix_peer import POSTFIX, wait_until

WAIT = 15.0


class Filter:
    """A before-queue SMTP filter on 127.0.0.1:port that reinjects into `downstream`."""

    def __init__(self, downstream: int, unix: str | None = None):
        self.downstream = downstream
        if unix is None:
            self.sock = socket.create_server(("127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(unix)
            os.chmod(unix, 0o666)  # smtpd runs as the instance's account
            self.sock.listen()
            self.port = 0
        self.sock.settimeout(0.2)
        self.seen: list[list[str]] = []   # commands per connection
        self.connected_at: list[float] = []
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=5)
        self.sock.close()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.connected_at.append(time.monotonic())
            log: list[str] = []
            self.seen.append(log)
            t = threading.Thread(target=self._serve, args=(c, log), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, c: socket.socket, log: list[str]) -> None:
        c.settimeout(WAIT)
        f = c.makefile("rb")
        down = None
        down_f = None

        def send(text: str) -> None:
            c.sendall(text.encode() + b"\r\n")

        def down_cmd(line: str) -> str:
            down.sendall(line.encode() + b"\r\n")
            return down_reply()

        def down_reply() -> str:
            lines = []
            while True:
                l = down_f.readline().decode().rstrip("\r\n")
                lines.append(l)
                if len(l) < 4 or l[3] != "-":
                    return "\r\n".join(lines)

        try:
            send("220 filter.example ESMTP test filter")
            while not self.stop.is_set():
                raw = f.readline()
                if not raw:
                    return
                line = raw.decode(errors="replace").rstrip("\r\n")
                log.append(line)
                verb = line.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    send("250-filter.example\r\n250-PIPELINING\r\n"
                         "250-XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT\r\n250 8BITMIME")
                    down = socket.create_connection(("127.0.0.1", self.downstream), timeout=WAIT)
                    down_f = down.makefile("rb")
                    down_reply()
                    down_cmd("EHLO filter.example")
                elif verb == "XFORWARD" or verb == "MAIL":
                    send(down_cmd(line))
                elif verb == "RCPT":
                    if "stall" in line:
                        self.stop.wait(WAIT)  # no reply: smtpd's smtpd_proxy_timeout ends it
                        return
                    if "garbage" in line:
                        c.sendall(b"this is not an SMTP reply\r\n")
                        continue
                    if "badrcpt" in line:
                        send("550 5.1.1 <badrcpt@localhost>: filter says no such user")
                    else:
                        send(down_cmd(line))
                elif verb == "DATA":
                    send("354 go ahead")
                    body = []
                    while True:
                        l = f.readline()
                        if not l or l == b".\r\n":
                            break
                        body.append(l)
                    content = b"".join(body)
                    log.append("CONTENT " + content.decode(errors="replace"))
                    if b"REJECTME" in content:
                        down_cmd("RSET")
                        send("554-5.7.1 filter rejected this message\r\n554 5.7.1 second line")
                        continue
                    r = down_cmd("DATA")
                    if not r.startswith("354"):
                        send(r)
                        continue
                    down.sendall(b"X-Filtered: yes\r\n" + content + b".\r\n")
                    send(down_reply())
                elif verb == "QUIT":
                    if down:
                        down_cmd("QUIT")
                    send("221 bye")
                    return
                elif verb == "RSET":
                    send(down_cmd("RSET") if down else "250 ok")
                else:
                    send("502 5.5.2 not here")
        except (OSError, ValueError):
            return
        finally:
            for s in (down, c):
                if s is not None:
                    s.close()


def _reinjection(port: int) -> str:
    """The master.cf service the filter reinjects into (Postfix's SMTPD_PROXY_README)."""
    return (f"127.0.0.1:{port} inet n - n - - smtpd\n  -o smtpd_proxy_filter=\n"
            "  -o smtpd_authorized_xforward_hosts=127.0.0.0/8\n")


@pytest.fixture
def proxied(instance):
    """The instance with `smtpd_proxy_filter` on its SMTP port, a reinjection smtpd on
    another port, and the Python filter between them; yields (instance, filter)."""
    inst = instance
    reinject = free_port()
    filt = Filter(reinject)
    inst.reinject = reinject
    with open(inst.root / "master.cf", "a") as m:
        m.write(_reinjection(reinject))
    inst.run("postconf", "-e", f"smtpd_proxy_filter=127.0.0.1:{filt.port}",
             "smtpd_proxy_ehlo=proxy-ehlo.example", "smtpd_proxy_timeout=2s")
    try:
        inst.start()
        inst.wait_for(lambda: _listening(inst.port) and _listening(reinject), what="both smtpd ports")
        yield inst, filt
    finally:
        filt.close()


def _restart(inst) -> None:
    inst.stop()
    inst.start()
    inst.wait_for(lambda: _listening(inst.port), what="smtpd port")


def _notice_delivered(inst) -> None:
    """Waits for the postmaster's notice of the software error (notify_classes) to be
    delivered: a stop during a delivery waits for it."""
    inst.wait_for(lambda: "to=<postmaster@" in inst.log() and not inst.queue_files(),
                  what="postmaster notice delivered")


def _msg(inst, user: str):
    raw = inst.wait_for_mail(user, 1)[0].read_bytes()
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def test_accept_reject_and_xforward(proxied):
    inst, filt = proxied
    with smtplib.SMTP("127.0.0.1", inst.port, local_hostname="client.example", timeout=WAIT) as c:
        c.ehlo()
        # Accepted: the client gets the reinjection's own 250 (its queue ID), relayed.
        c.mail("alice@example.org")
        assert c.rcpt("ok@localhost")[0] == 250
        code, text = c.data(b"Subject: proxied\r\n\r\nbody\r\n.dot line\r\n")
        assert code == 250 and b"queued as" in text, text
        # A recipient the filter refuses: its code and text, verbatim.
        c.mail("alice@example.org")
        assert c.rcpt("badrcpt@localhost") == (550, b"5.1.1 <badrcpt@localhost>: filter says no such user")
        assert c.rcpt("rej@localhost")[0] == 250
        # The filter rejects at the end of data: multi-line reply relayed.
        code, text = c.data(b"Subject: bad\r\n\r\nREJECTME\r\n")
        assert (code, text) == (554, b"5.7.1 filter rejected this message\n5.7.1 second line"), text
    # BDAT: the filter gets DATA (it does not announce CHUNKING), as from Postfix.
    s = socket.create_connection(("127.0.0.1", inst.port), timeout=WAIT)
    f = s.makefile("rb")
    body = b"Subject: chunked\r\n\r\nin chunks\r\n"
    s.sendall(b"EHLO client.example\r\nMAIL FROM:<c@example.org>\r\nRCPT TO:<chunk@localhost>\r\n"
              + f"BDAT {len(body)} LAST\r\n".encode() + body + b"QUIT\r\n")
    replies = [f.readline() for _ in range(4)]
    while replies[-1][3:4] == b"-" or not replies[-1].startswith(b"250 2.0.0 Ok: queued as"):
        replies.append(f.readline())
        assert len(replies) < 40 and replies[-1], replies
    s.close()
    assert _msg(inst, "chunk")["X-Filtered"] == "yes"
    msg = _msg(inst, "ok")
    assert msg["X-Filtered"] == "yes"
    assert msg.get_payload().replace("\r\n", "\n") == "body\n.dot line\n"
    received = msg.get_all("Received")
    # smtpd's own Received (no queue ID: the filter's reinjection gives one) below the
    # reinjection's; the original client as smtpd saw it.
    assert any("from client.example (localhost [127.0.0.1])" in r and " id " not in r
               and "for <ok@localhost>" in r for r in received), received
    assert len(inst.new_messages("ok")) == 1
    first = filt.seen[0]
    assert first[0] == "EHLO proxy-ehlo.example", first
    xf = " ".join(l for l in first if l.startswith("XFORWARD"))
    assert re.search(r" PORT=\d+ ", xf), xf
    for attr in ("NAME=localhost", "ADDR=127.0.0.1", "HELO=client.example", "PROTO=ESMTP",
                 "SOURCE=LOCAL"):
        assert attr in xf, first
    assert [l for l in first if l.startswith("MAIL")] == ["MAIL FROM:<alice@example.org>"], first
    log = inst.log()
    assert re.search(r"smtpd\[\d+\]: proxy-accept: END-OF-MESSAGE: 250 2\.0\.0 Ok: queued as \w+; "
                     r"from=<alice@example\.org> to=<ok@localhost> proto=ESMTP helo=<client\.example>", log), log
    assert ("proxy-reject: END-OF-MESSAGE: 554-5.7.1 filter rejected this message??554 5.7.1 second line; "
            "from=<alice@example.org> to=<rej@localhost>") in log
    assert "QUIT" in first, first  # smtpd ends each filter session
    # Nothing queued for the rejected message.
    inst.wait_for(lambda: not inst.queue_files(), what="empty queue")
    assert not inst.new_messages("rej")


def test_filter_down_is_451(proxied):
    inst, filt = proxied
    filt.close()
    with smtplib.SMTP("127.0.0.1", inst.port, local_hostname="client.example", timeout=WAIT) as c:
        c.ehlo()
        assert c.mail("a@example.org") == (451, b"4.3.0 Error: queue file write error")
        assert c.rcpt("x@localhost")[0] == 503
    assert f"warning: connect to proxy filter 127.0.0.1:{filt.port}:" in inst.log()
    # The postmaster's notice of the software error (notify_classes) is delivered before
    # the instance stops (a stop during a delivery waits for it).
    _notice_delivered(inst)


def test_speed_adjust_connects_after_the_data(proxied):
    inst, filt = proxied
    inst.run("postconf", "-e", "smtpd_proxy_options=speed_adjust")
    _restart(inst)
    with smtplib.SMTP("127.0.0.1", inst.port, local_hostname="client.example", timeout=WAIT) as c:
        c.ehlo()
        assert c.mail("bob@example.org")[0] == 250
        assert c.rcpt("fast@localhost")[0] == 250
        assert c.docmd("DATA")[0] == 354
        time.sleep(0.5)
        assert filt.connected_at == [], "speed_adjust: no filter connection before the end of data"
        c.send(b"Subject: speed\r\n\r\nslow client\r\n.\r\n")
        code, text = c.getreply()
        assert code == 250 and b"queued as" in text, text
        assert len(filt.connected_at) == 1
        # A refusal during the replay is the reply to the end of data.
        c.mail("bob@example.org")
        assert c.rcpt("badrcpt@localhost")[0] == 250
        code, text = c.data(b"Subject: x\r\n\r\ny\r\n")
        assert (code, text) == (550, b"5.1.1 <badrcpt@localhost>: filter says no such user")
    msg = _msg(inst, "fast")
    assert msg["X-Filtered"] == "yes"


def test_stalled_or_garbage_filter_is_451(proxied):
    inst, filt = proxied
    with smtplib.SMTP("127.0.0.1", inst.port, local_hostname="client.example", timeout=WAIT) as c:
        c.ehlo()
        c.mail("a@example.org")
        t0 = time.monotonic()
        assert c.rcpt("stall@localhost") == (451, b"4.3.0 Error: queue file write error")
        assert 1.5 < time.monotonic() - t0 < 8, "smtpd_proxy_timeout = 2s bounds the wait"
        c.rset()
        c.mail("a@example.org")
        assert c.rcpt("garbage@localhost") == (451, b"4.3.0 Error: queue file write error")
    log = inst.log()
    assert f"warning: timeout talking to proxy 127.0.0.1:{filt.port}" in log
    assert f"warning: received garbage from proxy 127.0.0.1:{filt.port}" in log
    _notice_delivered(inst)


def test_unix_socket_filter(proxied):
    """smtpd_proxy_filter = unix:private/NAME, relative to the queue directory."""
    inst, _ = proxied
    path = inst.root / "queue" / "private" / "bqfilter"
    filt = Filter(inst.reinject, unix=str(path))
    try:
        inst.run("postconf", "-e", "smtpd_proxy_filter=unix:private/bqfilter")
        _restart(inst)
        with smtplib.SMTP("127.0.0.1", inst.port, local_hostname="client.example", timeout=WAIT) as c:
            c.ehlo()
            c.mail("u@example.org")
            c.rcpt("viaunix@localhost")
            code, text = c.data(b"Subject: unix\r\n\r\nover a unix socket\r\n")
            assert code == 250 and b"queued as" in text, text
        assert _msg(inst, "viaunix")["X-Filtered"] == "yes"
        assert filt.seen and filt.seen[0][0] == "EHLO proxy-ehlo.example"
    finally:
        filt.close()


def _conversation(filt: Filter) -> list[str]:
    """What the filter received, comparable across MTAs: verbs upper-cased, the client port,
    dates and the MTA name in Received comments masked."""
    out = []
    for conn in filt.seen:
        for line in conn:
            if line.startswith("CONTENT "):
                line = normalise(line.encode()).decode()
            else:
                verb, _, rest = line.partition(" ")
                line = f"{verb.upper()} {rest}".strip()
                line = re.sub(r" PORT=\d+", " PORT=N", line)
            out.append(line)
    return out


def test_filter_sees_what_postfix_sends(proxied):
    """Differential: Debian's Postfix with the same smtpd_proxy_filter settings and the same
    filter (reinjecting into its own second smtpd) gets the same client session; the filter
    must see the same commands, XFORWARD attributes and content (Received header included)."""
    if os.geteuid() != 0 or not POSTFIX.exists():
        pytest.skip("needs root and Debian's Postfix")
    inst, _ = proxied
    inst.run("postconf", "-e", f"myhostname = {HOST}")
    reinject_q = free_port()
    filt_q = Filter(reinject_q)
    pfx = PostfixOracle(free_port())
    reinject_p = free_port()
    filt_p = Filter(reinject_p)
    try:
        with open(inst.root / "master.cf", "a") as m:
            m.write(_reinjection(reinject_q))
        inst.run("postconf", "-e", f"smtpd_proxy_filter=127.0.0.1:{filt_q.port}")
        inst.stop()
        inst.start()
        pfx.setup()
        with open(pfx.conf / "master.cf", "a") as m:
            m.write(_reinjection(reinject_p))
        subprocess.run(["postconf", "-c", str(pfx.conf), "-e", f"smtpd_proxy_filter=127.0.0.1:{filt_p.port}",
                        "smtpd_proxy_ehlo=proxy-ehlo.example", "smtpd_proxy_timeout=2s"],
                       check=True, capture_output=True, timeout=WAIT)
        pfx.start()
        for port in (inst.port, reinject_q, pfx.port, reinject_p):
            wait_until(lambda: _listening(port), f"smtpd on {port}", pfx, inst)
        replies = {}
        for name, port in (("postfix", pfx.port), ("postern", inst.port)):
            got = []
            with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=WAIT) as c:
                c.ehlo()
                got.append(c.mail("alice@example.org", ["SIZE=100", "BODY=8BITMIME"]))
                got.append(c.rcpt(f"{RCPT}@localhost", ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;x@y.example"]))
                got.append(c.rcpt("badrcpt@localhost"))
                got.append(c.data(b"Subject: diff\r\nX-Note: one\r\n\r\nbody\r\n.dot line\r\n\r\nend\r\n")[0])
                c.mail("alice@example.org")
                c.rcpt(f"{RCPT}@localhost")
                got.append(c.data(b"Subject: bad\r\n\r\nREJECTME\r\n"))
            replies[name] = got
        deadline = time.monotonic() + WAIT
        while any(len(f.seen) < 2 or (f.seen[-1] and f.seen[-1][-1] != "QUIT") for f in (filt_p, filt_q)):
            assert time.monotonic() < deadline, (filt_p.seen, filt_q.seen)
            time.sleep(0.05)
        assert replies["postern"] == replies["postfix"], replies
        a, b = _conversation(filt_p), _conversation(filt_q)
        assert a == b, "\n".join(f"{x!r}\n{y!r}" for x, y in zip(a, b) if x != y)
    finally:
        filt_p.close()
        filt_q.close()
        pfx.close()
