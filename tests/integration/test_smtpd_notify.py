"""smtpd's postmaster notices (issue 10 §4, `notify_classes` with `error_notice_recipient`):
when an SMTP session hits an error of a class that `notify_classes` names (policy, protocol,
resource, software, bounce), the transcript of the session is mailed to
`$error_notice_recipient` at its end, as Postfix's smtpd_chat_notify does.

Checked on a Postern instance (the postmaster's Maildir): the notice's headers and body
(Subject `Postfix SMTP server: errors from HOST[ADDR]` with mail_name = Postfix, the
`Out:`/`In:` lines), one notice per session, nothing with the default classes for a policy
refusal, a software notice for `451 4.3.5 Server configuration error`. The last test compares
the notice with the one Debian's Postfix 3.7 sends for the same session (a private instance
that keeps its notice in the deferred queue with `defer_transports`; skipped without root or
Postfix). Every wait is bounded; every process is stopped by PID.
"""

from __future__ import annotations

import email
import email.policy
import os
import smtplib
import subprocess
import time

import pytest

from postern import MAX_WAIT, free_port
from test_smtp_client import postconf, wait_port

BASE = ("myorigin = localhost", "mydomain = localhost", "mynetworks = 127.0.0.2/32",
        "mail_name = Postfix")


def parse(raw: bytes) -> email.message.Message:
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def start(inst, *settings: str) -> None:
    postconf(inst, *BASE, *settings)
    inst.start()
    wait_port(inst.port)


def session(port: int) -> list[tuple[int, bytes]]:
    """A relay attempt from outside mynetworks, then an unknown command, then QUIT."""
    out = []
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=MAX_WAIT) as c:
        out.append(c.ehlo())
        out.append(c.mail("sender@example.org"))
        out.append(c.rcpt("victim@elsewhere.example"))
        out.append(c.docmd("BOGUS", "command"))
    return out


def notices(inst) -> list[email.message.Message]:
    return [parse(p.read_bytes()) for p in inst.new_messages("postmaster")]


def body_lines(msg: email.message.Message) -> list[str]:
    return msg.get_payload().splitlines()


def test_policy_and_protocol_transcript(instance):
    start(instance, "notify_classes = policy, protocol")
    replies = session(instance.port)
    assert replies[2][0] in (454, 554), replies
    assert replies[3][0] == 500, replies
    instance.wait_for_mail("postmaster", 1)
    time.sleep(0.5)  # a second notice would arrive by now
    got = notices(instance)
    assert len(got) == 1, [m["Subject"] for m in got]
    n = got[0]
    assert n["Subject"] == "Postfix SMTP server: errors from localhost[127.0.0.1]", n["Subject"]
    assert n["From"] == "Mail Delivery System <MAILER-DAEMON@localhost>", n["From"]
    assert n["To"] == "Postmaster <postmaster@localhost>", n["To"]
    assert n["Return-Path"].startswith("<double-bounce@"), n["Return-Path"]
    lines = body_lines(n)
    assert lines[0] == "Transcript of session follows.", lines
    assert lines[2].startswith(" Out: 220 "), lines
    upper = [l.upper() for l in lines]  # smtplib sends lower-case verbs
    assert " IN:  EHLO CLIENT.EXAMPLE" in upper
    assert " IN:  MAIL FROM:<SENDER@EXAMPLE.ORG>" in upper
    assert " IN:  RCPT TO:<VICTIM@ELSEWHERE.EXAMPLE>" in upper
    assert any(l.startswith(" Out: 454 4.7.1 <victim@elsewhere.example>: Relay access denied")
               or l.startswith(" Out: 554 5.7.1 <victim@elsewhere.example>: Relay access denied")
               for l in lines), lines
    assert " In:  BOGUS command" in lines
    assert " Out: 500 5.5.2 Error: command not recognized" in lines
    assert " IN:  QUIT" in upper and " Out: 221 2.0.0 Bye" in lines
    assert lines[-1] == "For other details, see the local mail logfile"
    assert all(not l or l.startswith(" ") for l in lines[2:-3]), lines


def test_default_classes_ignore_policy_and_report_software(instance):
    """notify_classes at its default (resource, software): a relay refusal and an unknown
    command send nothing; an unknown restriction word (451 4.3.5) sends a software notice."""
    start(instance)
    session(instance.port)
    time.sleep(1.0)
    assert notices(instance) == []
    postconf(instance, "smtpd_client_restrictions = no_such_restriction_word")
    instance.reload()
    deadline = time.monotonic() + MAX_WAIT
    while True:  # the reloaded smtpd answers with the configuration error
        with smtplib.SMTP("127.0.0.1", instance.port, local_hostname="client.example",
                          timeout=MAX_WAIT) as c:
            c.ehlo()
            c.mail("sender@example.org")
            code, text = c.rcpt("postmaster@localhost")
        if code == 451 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert (code, text) == (451, b"4.3.5 Server configuration error"), (code, text)
    n = parse(instance.wait_for_mail("postmaster", 1)[0].read_bytes())
    assert n["Subject"] == "Postfix SMTP server: errors from localhost[127.0.0.1]"
    assert " Out: 451 4.3.5 Server configuration error" in body_lines(n)


# Differences from Debian's Postfix 3.7 in the compared notice, each justified:
# the EHLO keyword lines (each server's own capabilities) are left out, myorigin differs
# (the From address).
def normalise(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        if line.startswith(" Out: 250-") or line.startswith(" Out: 250 ") and "." not in line[10:14]:
            continue  # EHLO keywords
        out.append(line)
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="a private Postfix instance needs root")
@pytest.mark.skipif(not os.path.exists("/usr/sbin/postfix"), reason="Debian's Postfix is not installed")
def test_notice_matches_debian_postfix(instance):
    from test_relay_battery import PostfixSmtpd, wait_banner
    settings = ("myhostname = mx.test.example", "mynetworks = 127.0.0.2/32",
                "notify_classes = policy, protocol",
                "error_notice_recipient = notice@elsewhere.example")
    start(instance, *settings, "smtpd_banner = $myhostname ESMTP Postfix",
          "defer_transports = smtp", "relayhost = [127.0.0.1]:9")
    pf = PostfixSmtpd(free_port(), "[127.0.0.1]:9")
    try:
        pf.setup()
        pf.postconf("-e", *settings, "defer_transports = smtp")
        pf.start()
        wait_banner(pf.port, "Postfix", "Postfix")
        session(pf.port)
        session(instance.port)
        ours = instance.wait_for(lambda: [p for p in instance.queue_files() if "/deferred/" in str(p)],
                                 what="Postern's notice deferred")
        theirs = instance.wait_for(
            lambda: [p for p in (pf.queue / "deferred").rglob("*") if p.is_file()],
            what="Postfix's notice deferred")
        pf_text = subprocess.run(["postcat", "-c", str(pf.conf), "-h", "-b", str(theirs[0])],
                                 capture_output=True, text=True, timeout=30).stdout
        our_text = instance.run("postcat", "-h", "-b", str(ours[0])).stdout.decode()
    finally:
        pf.close()
    p_head, p_body = pf_text.split("\n\n", 1)
    o_head, o_body = our_text.split("\n\n", 1)
    hdr = lambda h: {l.split(":", 1)[0]: l.split(":", 1)[1].strip() for l in h.splitlines() if ":" in l and not l[0].isspace()}
    ph, oh = hdr(p_head), hdr(o_head)
    assert ph["Subject"] == oh["Subject"] == "Postfix SMTP server: errors from localhost[127.0.0.1]"
    assert ph["From"] == "Mail Delivery System <MAILER-DAEMON@mx.test.example>", ph
    assert oh["From"] == "Mail Delivery System <MAILER-DAEMON@localhost>", oh  # myorigin differs
    assert ph["To"] == oh["To"] == "Postmaster <notice@elsewhere.example>"
    assert {"Date", "Message-Id", "Received"} <= set(oh), oh
    assert normalise(p_body) == normalise(o_body), (p_body, o_body)
