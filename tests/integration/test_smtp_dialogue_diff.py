"""A differential SMTP dialogue battery (issue 13, class 3): the same dialogues against a
private Debian Postfix 3.7 smtpd and a Postern smtpd configured alike, reply code and
enhanced status code compared per step, and the full text too (EHLO's keyword lines
included: neither side offers STARTTLS or AUTH here), except the lines listed in
TEXT_DIFFERENCES (none today).

Both MTAs get the same main.cf settings (COMMON) and two listeners each: the ordinary one,
and one with small error limits (`-o smtpd_hard_error_limit=3 -o smtpd_soft_error_limit=2
-o smtpd_junk_command_limit=2`) for the error-counting dialogues. Delivery goes to the
discard transport on both sides, so nothing leaves either MTA. Clients connect from
127.0.0.1 (in mynetworks on both sides).

A dialogue is a list of steps; a step is a command line (CRLF added), or a
`Raw(bytes, n)` sent as is and followed by `n` replies. A closed connection reads as
`<closed>`; a reply not there within 3 s as `<timeout>`. Printed (`pytest -s`): the step
count, identical codes, identical texts, and each difference.

Needs root (Postfix's master runs as root) and /usr/sbin/postfix; skipped otherwise.
Every process is stopped by PID; every wait is bounded.
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from test_postfix_peer import POSTFIX
from test_relay_battery import PostfixSmtpd, wait_banner
from postern import free_port

pytestmark = [
    pytest.mark.skipif(not POSTFIX.exists(), reason="Debian's Postfix is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="a private Postfix instance needs root"),
]

HOST = "mx.test.example"
LIMITS = "-o smtpd_hard_error_limit=3 -o smtpd_soft_error_limit=2 -o smtpd_junk_command_limit=2"

COMMON = {
    "compatibility_level": "3.6",
    "myhostname": HOST,
    "mydomain": "test.example",
    "myorigin": "$myhostname",
    "mydestination": "$myhostname, localhost",
    "mynetworks": "127.0.0.1/32",
    "inet_protocols": "ipv4",
    "local_recipient_maps": "inline:{ user=yes, other=yes }",
    "alias_maps": "",
    "relay_domains": "relay.example",
    "local_transport": "discard:",
    "default_transport": "discard:",
    "relay_transport": "discard:",
    "notify_classes": "",
    "smtpd_error_sleep_time": "0",
    "message_size_limit": "100000",
    "smtpd_banner": "$myhostname ESMTP dialogue",
}


@dataclass
class Raw:
    data: bytes
    replies: int = 1


MSG = "Subject: dialogue\r\n\r\nbody\r\n."
# (name, listener: "main"|"limits", steps)
DIALOGUES: list[tuple[str, str, list]] = [
    ("ordinary", "main", ["EHLO client.example", f"MAIL FROM:<s@{HOST}>", f"RCPT TO:<user@{HOST}>",
                          "DATA", MSG, "RSET", "NOOP", "NOOP extra words", "QUIT"]),
    ("helo-forms", "main", ["HELO", "EHLO", "HELO  two   words ", "HELO client.example",
                            "EHLO client.example", "helo lower.example", "QUIT now"]),
    ("sequence", "main", ["EHLO c.example", f"RCPT TO:<user@{HOST}>", "DATA", "MAIL FROM:<s@x.example>",
                          "MAIL FROM:<s@x.example>", "DATA", "BDAT 0 LAST", "RSET", "QUIT"]),
    ("unknown", "main", ["EHLO c.example", "FOO", "EXPN user", "HELP", "TURN", "VERB", "XYZZY arg",
                         "LHLO c.example", "NOOP", "QUIT"]),
    ("header-line", "main", ["EHLO c.example", "Subject: hello", "NOOP"]),
    ("header-first", "main", ["From: someone@example.com", "NOOP"]),
    ("http-get", "main", ["GET / HTTP/1.0", "NOOP"]),
    ("http-post", "main", ["EHLO c.example", "POST /form HTTP/1.1", "NOOP"]),
    ("connect", "main", ["CONNECT mx.example:25 HTTP/1.0", "NOOP"]),
    ("non-letter", "main", ["EHLO c.example", "123 abc", "NOOP"]),
    ("non-letter-2", "main", ["<html>", "NOOP"]),
    ("space-first", "main", [" NOOP", "QUIT"]),
    ("empty-line", "main", ["", "NOOP", "QUIT"]),
    ("mail-syntax", "main", ["EHLO c.example", "MAIL", "MAIL FROM:", "MAIL TO:<s@x.example>",
                             "MAIL FROM:<s@x.example", "MAIL FROM:<s@x.example> SIZE=abc",
                             "MAIL FROM:<s@x.example> FOO=bar", "MAIL FROM:<s@x.example> BODY=9BIT",
                             "MAIL FROM:<s@x.example> SIZE=999999999", "MAIL FROM:<>", "RSET", "MAIL FROM:<>",
                             "RSET", "MAIL FROM:<s@x.example> SIZE=99999999999999999999", "MAIL FROM:<>",
                             "EHLO c.example", "MAIL FROM:<> SIZE=100", "QUIT"]),
    ("rcpt-syntax", "main", ["EHLO c.example", "MAIL FROM:<s@x.example>", "RCPT", "RCPT TO:",
                             "RCPT FROM:<user@x.example>", "RCPT TO:<>", f"RCPT TO:<user@{HOST}> NOTIFY=bogus",
                             f"RCPT TO:<user@{HOST}> ORCPT=bad", f"RCPT TO:<user@{HOST}> FOO=bar",
                             f"RCPT TO:<user@{HOST}> NOTIFY=SUCCESS,FAILURE", "QUIT"]),
    ("args-on-plain-verbs", "main", ["EHLO c.example", "DATA x", "RSET x", "STARTTLS x", "QUIT"]),
    ("no-valid-rcpt-data", "main", ["EHLO c.example", "MAIL FROM:<s@x.example>", f"RCPT TO:<nosuch@{HOST}>",
                                    "DATA", "Subject: x", "NOOP"]),
    ("no-valid-rcpt-bdat", "main", ["EHLO c.example", "MAIL FROM:<s@x.example>", f"RCPT TO:<nosuch@{HOST}>",
                                    Raw(b"BDAT 5 LAST\r\nhello"), "NOOP", "QUIT"]),
    ("pipelining", "main", ["EHLO c.example",
                            Raw(f"MAIL FROM:<s@x.example>\r\nRCPT TO:<user@{HOST}>\r\nRCPT TO:<nosuch@{HOST}>"
                                f"\r\nDATA\r\n".encode(), 4), MSG, "QUIT"]),
    ("pipelined-rset-noop", "main", ["EHLO c.example", Raw(b"RSET\r\nNOOP\r\nVRFY user\r\nFOO\r\n", 4), "QUIT"]),
    ("data-edge", "main", ["EHLO c.example", "MAIL FROM:<s@x.example>", f"RCPT TO:<user@{HOST}>", "DATA",
                           "Subject: x\r\n\r\n..leading dot\r\n.", "DATA", "MAIL FROM:<s@x.example>",
                           f"RCPT TO:<other@{HOST}>", "DATA", "", "QUIT"]),
    ("data-empty", "main", ["EHLO c.example", "MAIL FROM:<>", f"RCPT TO:<user@{HOST}>", "DATA", ".", "QUIT"]),
    ("data-too-big", "main", ["EHLO c.example", "MAIL FROM:<s@x.example>", f"RCPT TO:<user@{HOST}>", "DATA",
                              "Subject: big\r\n\r\n" + ("x" * 998 + "\r\n") * 110 + ".", "QUIT"]),
    ("bdat", "main", ["EHLO c.example", "MAIL FROM:<s@x.example>", f"RCPT TO:<user@{HOST}>",
                      Raw(b"BDAT 12\r\nSubject: b\r\n"), Raw(b"BDAT 6 LAST\r\n\r\nbody"), "QUIT"]),
    ("bdat-no-mail", "main", ["EHLO c.example", Raw(b"BDAT 4 LAST\r\nabcd"), "NOOP", "QUIT"]),
    ("bdat-syntax", "main", ["EHLO c.example", "MAIL FROM:<s@x.example>", f"RCPT TO:<user@{HOST}>",
                             "BDAT", "BDAT x", "BDAT 1 MORE", "QUIT"]),
    ("bdat-then-data", "main", ["EHLO c.example", "MAIL FROM:<s@x.example>", f"RCPT TO:<user@{HOST}>",
                                Raw(b"BDAT 3\r\nabc"), "DATA", "MAIL FROM:<s@x.example>",
                                f"RCPT TO:<user@{HOST}>", "QUIT"]),
    ("bdat-leftover", "main", ["EHLO c.example", "MAIL FROM:<s@x.example>", f"RCPT TO:<user@{HOST}>",
                               Raw(b"BDAT 3\r\nabcdef\r\n", 2), "NOOP"]),
    ("vrfy", "main", ["EHLO c.example", "VRFY user", f"VRFY <user@{HOST}>", "VRFY nosuch", "VRFY",
                      "VRFY <user@x.example> SMTPUTF8", "VRFY a b c", "QUIT"]),
    ("etrn", "main", ["EHLO c.example", "ETRN", "ETRN a b", "ETRN bad..name", "MAIL FROM:<s@x.example>",
                      "ETRN example.com", "RSET", "ETRN example.com", "ETRN relay.example", "ETRN @relay.example",
                      "ETRN #relay.example", "QUIT"]),
    ("odd-addresses", "main", ["EHLO c.example", f"MAIL FROM:<user@{HOST}@other.example>",
                               f"RCPT TO:<user@{HOST}@other.example>", f'RCPT TO:<""@{HOST}>',
                               "RCPT TO:<user@relay.example@other.example>", "RSET",
                               f'MAIL FROM:<""@{HOST}>', "RSET", "MAIL FROM:<a@b@c>",
                               f"RCPT TO:<postmaster@{HOST}>", f"RCPT TO:<MAILER-DAEMON@{HOST}>",
                               f"RCPT TO:<double-bounce@{HOST}>", f'RCPT TO:<""@localhost>', "QUIT"]),
    ("nul-and-cr", "main", ["EHLO c.example", Raw(b"NOOP\x00x\r\n"), Raw(b"MAIL FROM:<s@x\rexample>\r\n"),
                            Raw(b"NO\rOP\r\n"), "NOOP", "QUIT"]),
    ("nul-more", "main", ["EHLO c.example", Raw(b"MAIL FROM:<s@x.example>\x00junk\r\n"), Raw(b"\x00NOOP\r\n"),
                          Raw(f"RCPT TO:<us\x00er@{HOST}>\r\n".encode()), Raw(b"HELO a\x00b\r\n"), "QUIT"]),
    ("bdat-too-big", "main", ["EHLO c.example", "MAIL FROM:<s@x.example>", f"RCPT TO:<user@{HOST}>",
                              Raw(b"BDAT 100001 LAST\r\n" + b"x" * 100001), "NOOP", "QUIT"]),
    ("bdat-leftover-header", "main", ["EHLO c.example", "MAIL FROM:<s@x.example>", f"RCPT TO:<user@{HOST}>",
                                      Raw(b"BDAT 3\r\nabcSubject: x\r\n", 2), "NOOP"]),
    ("auth-tls-off", "main", ["EHLO c.example", "AUTH PLAIN", "STARTTLS", "XCLIENT NAME=x", "QUIT"]),
    ("error-limit", "limits", ["EHLO c.example", "FOO", "BAR", "BAZ", "NOOP"]),
    ("error-limit-syntax", "limits", ["EHLO c.example", "MAIL", f"RCPT TO:<user@{HOST}>", "DATA", "NOOP"]),
    ("junk-limit", "limits", ["EHLO c.example", "NOOP", "NOOP", "NOOP", "RSET", "VRFY user", "NOOP", "NOOP",
                              "NOOP"]),
    ("junk-reset-by-mail", "limits", ["EHLO c.example", "NOOP", "NOOP", "MAIL FROM:<s@x.example>",
                                      f"RCPT TO:<user@{HOST}>", "DATA", MSG, "NOOP", "NOOP", "NOOP", "NOOP", "NOOP"]),
    ("error-reset-by-mail", "limits", ["EHLO c.example", "FOO", "BAR", "MAIL FROM:<s@x.example>",
                                       f"RCPT TO:<user@{HOST}>", "DATA", MSG, "FOO", "BAR", "NOOP"]),
]

# Lines whose full text may differ (codes still must match); (dialogue, step index) -> why.
TEXT_DIFFERENCES: dict[tuple[str, int], str] = {}
# Steps whose code may differ; (dialogue, step index) -> why. Keep in docs/compatibility.md.
CODE_DIFFERENCES: dict[tuple[str, int], str] = {}


def read_reply(f) -> str:
    lines = []
    while True:
        try:
            raw = f.readline()
        except socket.timeout:
            return "\n".join(lines + ["<timeout>"])
        except OSError:
            return "\n".join(lines + ["<closed>"])
        if not raw:
            return "\n".join(lines + ["<closed>"]) if lines else "<closed>"
        line = raw.decode(errors="replace").rstrip("\r\n")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return "\n".join(lines)


def run_dialogue(port: int, steps: list) -> list[str]:
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    f = s.makefile("rwb")
    out = [read_reply(f)]
    try:
        for step in steps:
            data, n = (step.data, step.replies) if isinstance(step, Raw) else (step.encode() + b"\r\n", 1)
            try:
                f.write(data)
                f.flush()
            except OSError:
                pass
            out += [read_reply(f) for _ in range(n)]
    finally:
        s.close()
    return out


def normalize(reply: str) -> str:
    reply = re.sub(r"queued as [0-9A-Za-z]+", "queued as ID", reply)
    return reply


def code_of(reply: str) -> str:
    """The code and enhanced code of a reply's last line ("<closed>" as is)."""
    last = reply.splitlines()[-1] if reply else ""
    m = re.match(r"(\d{3})[ -](\d\.\d{1,3}\.\d{1,3})?", last)
    if not m:
        return last
    return f"{m.group(1)} {m.group(2) or ''}".strip()


class Postfix(PostfixSmtpd):
    def __init__(self, port: int, limits_port: int):
        super().__init__(port, "[127.0.0.1]:9")
        self.limits_port = limits_port

    def _master_cf(self) -> str:
        return super()._master_cf() + f"127.0.0.1:{self.limits_port} inet n - n - - smtpd {LIMITS}\n"


def step_labels(steps: list) -> list[str]:
    labels = ["<greeting>"]
    for st in steps:
        if isinstance(st, Raw):
            text = st.data.decode(errors="replace").replace("\r\n", "\\r\\n")[:40]
            labels += [f"{text} [{i + 1}/{st.replies}]" for i in range(st.replies)]
        else:
            labels.append(st[:40].replace("\r\n", "\\r\\n"))
    return labels


def test_smtp_dialogue_battery(instance):
    pf = Postfix(free_port(), free_port())
    inst = instance
    ours_limits = free_port()
    t0 = time.monotonic()
    results: list[tuple[str, int, str, str, str]] = []
    try:
        pf.setup()
        common = [f"{k}={v}" for k, v in COMMON.items()]
        pf.postconf("-e", *common)
        inst.run("postconf", "-e", *common)
        master = Path(inst.root) / "master.cf"
        master.write_text(master.read_text() + f"127.0.0.1:{ours_limits} inet n - n - - smtpd {LIMITS}\n")
        pf.start()
        inst.start()
        wait_banner(pf.port, "dialogue", "Postfix")
        wait_banner(inst.port, "dialogue", "Postern")
        wait_banner(pf.limits_port, "dialogue", "Postfix (limits)")
        wait_banner(ours_limits, "dialogue", "Postern (limits)")
        for name, listener, steps in DIALOGUES:
            theirs = run_dialogue(pf.port if listener == "main" else pf.limits_port, steps)
            ours = run_dialogue(inst.port if listener == "main" else ours_limits, steps)
            for i, (label, o, t) in enumerate(zip(step_labels(steps), ours, theirs)):
                results.append((name, i, label, normalize(o), normalize(t)))
    finally:
        pf.close()
    total = len(results)
    same_code = [r for r in results if code_of(r[3]) == code_of(r[4])]
    same_text = [r for r in results if r[3] == r[4]]
    print(f"\nSMTP dialogue battery: {len(DIALOGUES)} dialogues, {total} steps; identical code+enhanced "
          f"code {len(same_code)}/{total}; identical text {len(same_text)}/{total}; "
          f"{time.monotonic() - t0:.1f}s")
    verbose = os.environ.get("DIALOGUE_VERBOSE") == "1"
    for name, i, label, o, t in results:
        if verbose:
            print(f"  {'SAME' if o == t else 'DIFF'} [{name} #{i}] {label!r}: postern={o!r} postfix={t!r}")
        elif o != t:
            mark = "TEXT" if code_of(o) == code_of(t) else "CODE"
            print(f"  {mark} [{name} #{i}] {label!r}: postern={o!r} postfix={t!r}")
    bad_code = [r for r in results if code_of(r[3]) != code_of(r[4]) and (r[0], r[1]) not in CODE_DIFFERENCES]
    bad_text = [r for r in results if r[3] != r[4] and code_of(r[3]) == code_of(r[4])
                and (r[0], r[1]) not in TEXT_DIFFERENCES]
    assert total >= 60
    assert not bad_code, "\n".join(f"[{n} #{i}] {lab}: postern={o!r} postfix={t!r}" for n, i, lab, o, t in bad_code)
    assert not bad_text, "\n".join(f"[{n} #{i}] {lab}: postern={o!r} postfix={t!r}" for n, i, lab, o, t in bad_text)
