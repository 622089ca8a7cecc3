"""Differential test: the same messages through Debian's Postfix and through Postern.

Issue 13 ("message handling"): every message of a corpus of edge cases (below,
CORPUS) is submitted to a private Postfix 3.7 instance and to a Postern instance
configured alike (same myhostname, mydomain, myorigin, local delivery to
Maildir under mail_spool_directory), once over SMTP (a raw client, so bare CR,
NUL and missing final newlines reach the server as written), once through
each MTA's `sendmail`, and once more over SMTP from 127.0.0.2, which the default
`local_header_rewrite_clients` (permit_inet_interfaces) does not match: a "remote"
client, whose mail gets no added headers and no header address rewriting. The delivered Maildir files are compared after removing
what each MTA adds legitimately:
  * queue IDs (learned from each message's own Received header);
  * the digits of dates (the date *format* -- day padding, zone comment -- is
    compared) and of Message-Id time stamps;
  * the MTA name in Received comments (`(Postfix)` vs `(Postern)`).
A case is "identical" when the normalised files are byte-identical. The test
asserts that every case in EXPECTED_SAME is identical and prints the counts
(`-s` shows them); the remaining differences are listed, with their reasons, in
docs/compatibility.md, section "Message handling". POSTERN_DIFF_DUMP=DIR writes
both normalised versions of every case to DIR for inspection.

Needs root (Postfix's master runs as root) and Debian's Postfix; skipped
otherwise. Every wait is bounded; Postfix is stopped and its processes killed
by PID (PostfixPeer.close()).
"""

from __future__ import annotations

import difflib
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from postern import ensure_user, free_port
from test_postfix_peer import POSTFIX, SENDMAIL, PostfixPeer, wait_until

pytestmark = [
    pytest.mark.skipif(not POSTFIX.exists() or not SENDMAIL.exists(),
                       reason="Debian's Postfix is not installed (/usr/sbin/postfix missing)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="a private Postfix instance needs root"),
]

RCPT = "postern-test"
REMOTE = "127.0.0.2"  # a loopback address that is not an interface address
HOST = "mx.test.example"
BIG_FOLD = "".join(f" word{i:05d}\n" for i in range(12000))  # one header of ~130 kB

# name -> message (LF line endings; the SMTP client turns LF into CRLF, bare CR stays).
CORPUS: dict[str, bytes] = {
    "plain": b"From: Alice <alice@example.com>\nTo: Bob <bob@example.com>\nSubject: plain\n"
             b"Date: Sat, 5 Dec 2026 10:00:00 +0000\nMessage-ID: <plain@example.com>\n\nhello\n",
    "no-origin-headers": b"Subject: nothing else\n\nbody\n",
    "headers-only": b"From: alice@example.com\nTo: bob@example.com\nSubject: only headers\n",
    "headers-blank-line": b"From: alice@example.com\nTo: bob@example.com\nSubject: blank\n\n",
    "mbox-from-line": b"From alice@example.com Sat Dec  5 10:00:00 2026\nFrom: alice@example.com\n"
                      b"To: bob@example.com\nSubject: from line\n\nbody\n",
    "space-before-colon": b"From: alice@example.com\nSubject : spaced\nX-Tab\t: tabbed\nTo: b@example.com\n\nb\n",
    "bare-cr-header": b"From: alice@example.com\nSubject: a\rb\nTo: b@example.com\n\nbody\n",
    "bare-cr-body": b"From: alice@example.com\nTo: b@example.com\nSubject: crbody\n\nline a\rb\nend\r\n",
    "nul-header": b"From: alice@example.com\nSubject: ab\x00cd\nTo: b@example.com\n\nbody\n",
    "nul-body": b"From: alice@example.com\nTo: b@example.com\nSubject: nulbody\n\nab\x00cd\n",
    "empty": b"",
    "text-only": b"just some text, no header\nsecond line\n",
    "continuation-first": b" leading space: x\nSubject: y\n\nbody\n",
    "no-final-newline": b"From: alice@example.com\nTo: b@example.com\nSubject: nonl\n\nbody without newline",
    "many-headers": b"From: alice@example.com\nTo: b@example.com\nSubject: many\n"
                    + b"".join(b"X-Filler-%04d: %s\n" % (i, b"f" * 60) for i in range(1800)) + b"\nbody\n",
    "giant-header": b"From: alice@example.com\nTo: b@example.com\nSubject: giant\nX-Big:"
                    + BIG_FOLD.encode() + b"X-After: kept?\n\nbody\n",
    "long-line": b"From: alice@example.com\nTo: b@example.com\nSubject: " + b"L" * 5000 + b"\n\n" + b"B" * 5000 + b"\n",
    "empty-value": b"From: alice@example.com\nTo: b@example.com\nX-Empty:\nX-Ws: \nSubject: e\n\nbody\n",
    "dots": b"From: alice@example.com\nTo: b@example.com\nSubject: dots\n\n.\n..\n. x\n.end\n",
    "eight-bit-header": "From: Jörg <j@example.com>\nTo: b@example.com\nSubject: Grüße\n\nä\n".encode(),
    "cc-only": b"From: alice@example.com\nCc: carol@example.com\nSubject: cc\n\nbody\n",
    "bcc-only": b"From: alice@example.com\nBcc: dave@example.com\nSubject: bcc\n\nbody\n",
    "resent": b"From: alice@example.com\nTo: b@example.com\nResent-From: r@example.com\nSubject: resent\n\nb\n",
    "received-present": b"Received: from a by b; Sat, 5 Dec 2026 10:00:00 +0000\nFrom: alice@example.com\n"
                        b"To: b@example.com\nSubject: hop\n\nbody\n",
    "unqualified": b"From: alice\nTo: bob\nCc: carol, dave@example.com\nSubject: unqualified\n\nbody\n",
    "mime": b"From: alice@example.com\nTo: b@example.com\nSubject: mime\nMIME-Version: 1.0\n"
            b"Content-Type: multipart/mixed; boundary=\"XX\"\n\npre\n--XX\nContent-Type: text/plain\n\n"
            b"part\n--XX--\n",
    "header-then-text": b"From: alice@example.com\nSubject: x\nthis line is not a header\nTo: b@example.com\n",
    "crlf-input": b"From: alice@example.com\r\nTo: b@example.com\r\nSubject: crlf\r\n\r\nbody\r\n",
    "leading-empty-line": b"\nSubject: in body\n\nbody\n",
    "bad-header-name": b"From: alice@example.com\nX-Bad Name: x\nSubject: y\n\nbody\n",
    "eight-bit-name": "From: alice@example.com\nTést: x\nSubject: y\n\nbody\n".encode(),
    "whitespace-only-continuation": b"From: alice@example.com\nSubject: a\n \n\t\nTo: b@example.com\n\nbody\n",
    "no-space-after-colon": b"From:alice@example.com\nTo:b@example.com\nSubject:tight\n\nbody\n",
    "empty-from": b"From:\nTo: b@example.com\nSubject: empty from\n\nbody\n",
    "folded-from": b"From: Alice\n <alice@example.com>\nTo: b@example.com,\n\tc@example.com\nSubject: f\n\nb\n",
    "addresses": b"From: \"A, B\" <a@example.com> (comment)\nTo: group: x@example.com, y;, \"q u\"@example.com\n"
                 b"Reply-To: <@r1.example,@r2.example:u@example.com>\nCc: bob (Bob), <carol>\nSubject: a\n\nb\n",
    "duplicate-ids": b"From: a@example.com\nMessage-ID: <1@x>\nMessage-ID: <2@x>\nDate: x\nDate: y\nSubject: d\n\nb\n",
    "from-quoted-body": b"From: a@example.com\nSubject: gt\n\nFrom the start\n>From quoted\n",
    "mailbox-line-crlf": b"From a@example.com Sat Dec  5 10:00:00 2026\r\nSubject: x\r\n\r\nb\r\n",
    "many-tokens": b"From: a@example.com\nTo: " + b", ".join(b"u%d@example.com" % i for i in range(4000))
                   + b"\nSubject: tokens\n\nb\n",
    "long-to": b"From: a@example.com\nTo: " + b", ".join(b"u%d@example.com" % i for i in range(100))
               + b"\nSubject: long to\n\nb\n",
    "long-to-rewritten": b"From: a@example.com\nTo: " + b", ".join(b"u%d@example.com" % i for i in range(100))
                         + b", local\nSubject: long to\n\nb\n",
    "blank-only": b"\n",
    "trailing-space": b"From: a@example.com \nSubject: x   \nTo: b@example.com\t\n\nbody  \n",
    "long-name": b"From: a@example.com\nX-" + b"n" * 1000 + b": v\nSubject: long name\n\nb\n",
    "dot-line": b"From: a@example.com\nSubject: dot\n\nbefore\n.\nafter\n",
    "cr-only-endings": b"From: a@example.com\rSubject: cr\r\rbody\r",
    "empty-message-id": b"From: a@example.com\nMessage-Id:\ndate: lower\nSubject: e\n\nb\n",
    "from-line-then-body": b"From a@example.com Sat Dec  5 10:00:00 2026\n\nbody only\n",
    "from-line-continued": b"From a@example.com Sat Dec  5 10:00:00 2026\n cont\nSubject: x\n\nb\n",
    "giant-line": b"From: a@example.com\nSubject: " + b"x" * 150000 + b"\nTo: b@example.com\n\nb\n",
    "resent-no-from": b"From: a@example.com\nResent-To: r@example.com\nSubject: resent to\n\nb\n",
    "sender-no-from": b"Sender: s@example.com\nTo: b@example.com\nSubject: sender\n\nb\n",
    "return-path-in": b"Return-Path: <evil@example.com>\nFrom: a@example.com\nSubject: rp\n\nb\n",
    "colon-line": b"From: a@example.com\n:\nSubject: after colon line\n\nb\n",
    "content-length": b"From: a@example.com\nContent-Length: 5\nSubject: cl\n\nbody longer than five\n",
    "mime-8bit-cte": b"From: a@example.com\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
                     b"Content-Transfer-Encoding: 8bit\nSubject: m\n\n\xc3\xa4\n",
}

# Known differences, listed in docs/compatibility.md ("Message handling"): a malformed
# address header that is rewritten (`From: a@example.com Subject: cr  body`, what a
# CR-only message becomes): Postfix's parser makes three addresses of it, Postern one.
KNOWN_DIFFERENT = {("cr-only-endings", "smtp"), ("cr-only-endings", "sendmail")}
# DATA with an empty message: not a message handling case.
NOT_SENT = {("empty", "smtp"), ("empty", "remote")}
# Cases whose normalised deliveries must be identical: path "smtp" (from 127.0.0.1, which
# matches local_header_rewrite_clients), "sendmail", "remote" (SMTP from 127.0.0.2).
PATHS = ("smtp", "sendmail", "remote")
EXPECTED_SAME = {(c, p) for c in CORPUS for p in PATHS} - KNOWN_DIFFERENT - NOT_SENT


def smtp_send(port: int, sender: str, rcpt: str, data: bytes, source: str = "127.0.0.1") -> str:
    """A raw SMTP transaction from `source`; LF becomes CRLF (a bare CR stays). Returns the
    reply to '.'."""
    with socket.create_connection(("127.0.0.1", port), timeout=20, source_address=(source, 0)) as s:
        f = s.makefile("rb")

        def reply() -> str:
            lines = []
            while True:
                line = f.readline().decode(errors="replace")
                lines.append(line)
                if len(line) < 4 or line[3] != "-":
                    return "".join(lines)

        def cmd(c: str) -> str:
            s.sendall(c.encode() + b"\r\n")
            return reply()

        assert reply().startswith("220")
        assert cmd("EHLO client.example").startswith("250")
        assert cmd(f"MAIL FROM:<{sender}>").startswith("250")
        assert cmd(f"RCPT TO:<{rcpt}>").startswith("250")
        assert cmd("DATA").startswith("354")
        body = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if body and not body.endswith(b"\r\n"):
            body += b"\r\n"
        body = re.sub(rb"(?m)^\.", b"..", body)
        s.sendall(body + b".\r\n")
        r = reply()
        cmd("QUIT")
        return r


class PostfixOracle(PostfixPeer):
    """PostfixPeer with local delivery to Maildir and an smtpd on 127.0.0.1:port."""

    def __init__(self, port: int):
        super().__init__("")
        self.port = port
        self.spool = self.base / "mail"

    def setup(self) -> None:
        super().setup()
        self.spool.mkdir()
        self.spool.chmod(0o1777)
        settings = [f"myhostname = {HOST}", "mydomain = test.example", "myorigin = $myhostname",
                    "mydestination = localhost, $myhostname", "relayhost =",
                    f"mail_spool_directory = {self.spool}/", "compatibility_level = 3.7"]
        r = subprocess.run(["postconf", "-c", str(self.conf), "-e", *settings], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
        with open(self.conf / "master.cf", "a") as m:
            m.write(f"127.0.0.1:{self.port} inet n - n - - smtpd\n")

    def delivered(self) -> list[Path]:
        d = self.spool / RCPT / "new"
        return sorted(d.iterdir()) if d.is_dir() else []


MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
DATE = re.compile(rb"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [ \d]?\d (?:" + MONTHS.encode()
                  + rb") \d{4} \d\d:\d\d:\d\d [+-]\d{4}")
MID_STAMP = re.compile(rb"<\d{14}\.")


def normalise(raw: bytes) -> bytes:
    """Removes what each MTA adds legitimately (see the module doc)."""
    ids = set(re.findall(rb"\bid ([0-9A-Za-z]{6,40})\b", raw.split(b"\n\n", 1)[0]))
    for qid in sorted(ids, key=len, reverse=True):
        raw = raw.replace(qid, b"QUEUEID")
    raw = DATE.sub(lambda m: re.sub(rb"\d", b"N", m.group(0)).replace(m.group(0)[:3], b"DOW", 1), raw)
    raw = MID_STAMP.sub(b"<STAMP.", raw)
    return raw.replace(b"(Postern", b"(MTA").replace(b"(Postfix", b"(MTA")


def case_of(raw: bytes) -> tuple[str, str] | None:
    m = re.match(rb"Return-Path: <c(\d+)-(smtp|sendmail|remote)@example\.com>", raw)
    if not m:
        return None
    return list(CORPUS)[int(m.group(1))], m.group(2).decode()


def collect(files: list[Path]) -> dict[tuple[str, str], bytes]:
    out = {}
    for p in files:
        raw = p.read_bytes()
        key = case_of(raw)
        if key is not None:
            out[key] = normalise(raw)
    return out


def test_message_handling_matches_postfix(root_instance):
    ensure_user(RCPT)
    inst = root_instance
    for setting in (f"myhostname = {HOST}", "mydomain = test.example", "myorigin = $myhostname"):
        inst.run("postconf", "-e", setting)
    inst.start()
    pfx = PostfixOracle(free_port())
    try:
        pfx.setup()
        pfx.start()
        wait_until(lambda: _listening(pfx.port), "Postfix smtpd listening", pfx)
        wait_until(lambda: _listening(inst.port), "Postern smtpd listening", None, inst)
        sent, refused = 0, {}
        for i, (name, msg) in enumerate(CORPUS.items()):
            for path in ("smtp", "sendmail"):
                sender = f"c{i}-{path}@example.com"
                if path == "smtp":
                    if (name, path) in NOT_SENT:
                        continue
                    a = smtp_send(pfx.port, sender, f"{RCPT}@localhost", msg)
                    b = smtp_send(inst.port, sender, f"{RCPT}@localhost", msg)
                    if a[:3] != "250" or b[:3] != "250":
                        refused[(name, path)] = (a.strip(), b.strip())
                        continue
                else:
                    pfx.sendmail(["-f", sender, f"{RCPT}@localhost"], msg)
                    inst.sendmail(["-f", sender, f"{RCPT}@localhost"], msg)
                sent += 1
        # Second round: the same messages from 127.0.0.2, a client that does not match
        # local_header_rewrite_clients (permit_inet_interfaces: 127.0.0.1 only): no
        # headers added, no header address rewriting.
        for i, (name, msg) in enumerate(CORPUS.items()):
            if (name, "remote") in NOT_SENT:
                continue
            sender = f"c{i}-remote@example.com"
            a = smtp_send(pfx.port, sender, f"{RCPT}@localhost", msg, REMOTE)
            b = smtp_send(inst.port, sender, f"{RCPT}@localhost", msg, REMOTE)
            if a[:3] != "250" or b[:3] != "250":
                refused[(name, "remote")] = (a.strip(), b.strip())
                continue
            sent += 1
        got_p = wait_until(lambda: (d := pfx.delivered()) and len(d) >= sent and d, "Postfix deliveries", pfx)
        deadline = time.monotonic() + 15  # a message Postern lost counts as "(missing)"
        while len(got_q := inst.new_messages(RCPT)) < sent and time.monotonic() < deadline:
            time.sleep(0.2)
        p, q = collect(got_p), collect(got_q)
        dump = os.environ.get("POSTERN_DIFF_DUMP")
        same, differ = [], []
        for key in sorted(set(p) | set(q)):
            a, b = p.get(key, b"(missing)\n"), q.get(key, b"(missing)\n")
            if dump:
                d = Path(dump)
                d.mkdir(parents=True, exist_ok=True)
                (d / f"{key[0]}.{key[1]}.postfix").write_bytes(a)
                (d / f"{key[0]}.{key[1]}.postern").write_bytes(b)
            (same if a == b else differ).append(key)
            if a != b:
                diff = difflib.unified_diff(a.decode(errors="replace").splitlines()[:60],
                                            b.decode(errors="replace").splitlines()[:60],
                                            "postfix", "postern", lineterm="", n=1)
                print(f"--- {key}:\n" + "\n".join(list(diff)[:30]))
        print(f"refused over SMTP (postfix, postern): {refused}")
        print(f"identical: {len(same)} of {len(same) + len(differ)}; differ: {differ}")
        missing = EXPECTED_SAME - set(same)
        assert not missing, f"expected identical but differ: {sorted(missing)}"
        assert not (qc := list((inst.root / "queue" / "corrupt").iterdir())), f"corrupt/: {qc}"
    finally:
        pfx.close()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
