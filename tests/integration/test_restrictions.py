"""smtpd restriction words end to end: each word configured with `postconf -e`, a
started instance, and a real SMTP session (smtplib, swaks, raw socket), asserting
Postfix's exact reply (code, enhanced code, text).

The client is always 127.0.0.1 (named `localhost` from /etc/hosts); where it must be
outside mynetworks the case sets `mynetworks = 192.0.2.0/24`. Expected texts are
Postfix 3.7's (see crates/postern-smtpd/src/policy/tests.rs, checked against it).

The last tests run a real policy server, Debian's postfix-policyd-spf-python,
behind `check_policy_service`, with its DNS pointed at dnsserver.py on 127.0.0.2:53
(inside a private mount namespace with its own /etc/resolv.conf): no lookup ever
leaves the machine.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import smtplib
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

import pytest

from test_smtpd import Raw, started

OUTSIDE = "mynetworks = 192.0.2.0/24"   # 127.0.0.1 is not a trusted client
CLIENT = "localhost[127.0.0.1]"
MSG = b"Subject: restriction test\r\nFrom: s@example.org\r\n\r\nbody line\r\n"
QUEUED = re.compile(r"250 2\.0\.0 Ok: queued as [0-9A-Za-z]+$")


def fmt(code: int, msg: bytes | str) -> str:
    text = msg.decode(errors="replace") if isinstance(msg, bytes) else msg
    return f"{code} {text}"


def matches(want, got: str | None) -> bool:
    if isinstance(want, re.Pattern):
        return got is not None and want.match(got) is not None
    return want == got


@dataclass
class Case:
    id: str
    settings: list[str]
    expect: dict                    # stage or recipient -> reply (str or regex)
    tables: dict[str, str] = field(default_factory=dict)   # file name -> content
    helo: str = "client.example"
    sender: str = "s@example.org"
    rcpts: list[str] = field(default_factory=lambda: ["u@localhost"])
    delivered: dict[str, int] = field(default_factory=dict)  # maildir user -> count
    log: list[str] = field(default_factory=list)            # substrings of the maillog
    hold: bool = False


def transact(port: int, helo: str, sender: str, rcpts: list[str], body: bytes = MSG) -> dict:
    """EHLO, MAIL, each RCPT, DATA, message; stops at the first refused stage. Returns
    {"ehlo": reply, "mail": reply, <rcpt>: reply, "data": reply, "eod": reply}."""
    out: dict[str, str] = {}
    with smtplib.SMTP("127.0.0.1", port, local_hostname=helo, timeout=15) as c:
        code, msg = c.ehlo(helo)
        out["ehlo"] = fmt(code, msg.splitlines()[0] if code == 250 else msg)
        if code != 250:
            return out
        code, msg = c.mail(sender)
        out["mail"] = fmt(code, msg)
        if code != 250:
            return out
        accepted = 0
        for r in rcpts:
            code, msg = c.rcpt(r)
            out[r] = fmt(code, msg)
            accepted += code == 250
        if not accepted:
            return out
        try:
            code, msg = c.data(body)
            out["data"] = "354"
            out["eod"] = fmt(code, msg)
        except smtplib.SMTPDataError as e:
            out["data"] = fmt(e.smtp_code, e.smtp_error)
        c.quit()
    return out


def write_tables(inst, tables: dict[str, str]) -> None:
    for name, content in tables.items():
        p = inst.root / name
        p.write_text(content)
        p.chmod(0o644)


def table(name: str) -> str:
    """Placeholder for a table file in the instance dir, resolved by `resolve`."""
    return "@@" + name + "@@"


def resolve(inst, settings: list[str]) -> list[str]:
    return [re.sub(r"@@(.+?)@@", lambda m: str(inst.root / m.group(1)), s) for s in settings]


RCPT_OK = "250 2.1.5 Ok"
MAIL_OK = "250 2.1.0 Ok"

ACCESS_TEXTHASH = """\
reject@localhost     REJECT no such luck
rejectbare@localhost REJECT
defer@localhost      DEFER
defertext@localhost  DEFER come back later
c4@localhost         451 4.7.9 four text
c5@localhost         550 5.7.9 five text
c5bare@localhost     550 plain text
hold@localhost       HOLD
discard@localhost    DISCARD
redir@localhost      REDIRECT target@localhost
prep@localhost       PREPEND X-Postern-Test: prepended by access
warn@localhost       WARN careful now
cls@localhost        strict
"""

CASES = [
    # ---- generic words ------------------------------------------------------
    Case("permit", [OUTSIDE, "smtpd_recipient_restrictions = permit, reject"],
         {"u@localhost": RCPT_OK, "eod": QUEUED}, delivered={"u": 1}),
    Case("reject", [OUTSIDE, "smtpd_recipient_restrictions = reject"],
         {"mail": MAIL_OK, "u@localhost": "554 5.7.1 <u@localhost>: Recipient address rejected: Access denied"},
         log=[f"NOQUEUE: reject: RCPT from {CLIENT}: 554 5.7.1 <u@localhost>: Recipient address rejected: "
              "Access denied; from=<s@example.org> to=<u@localhost> proto=ESMTP helo=<client.example>"]),
    Case("defer", [OUTSIDE, "smtpd_recipient_restrictions = defer"],
         {"u@localhost": "450 4.3.2 <u@localhost>: Recipient address rejected: Try again later"}),
    Case("defer_if_permit", [OUTSIDE, "smtpd_recipient_restrictions = defer_if_permit, permit"],
         {"u@localhost": "450 4.7.0 <u@localhost>: Recipient address rejected: defer_if_permit requested"}),
    Case("defer_if_permit-then-reject", [OUTSIDE, "smtpd_recipient_restrictions = defer_if_permit, reject"],
         {"u@localhost": "554 5.7.1 <u@localhost>: Recipient address rejected: Access denied"}),
    Case("defer_if_reject", [OUTSIDE, "smtpd_recipient_restrictions = defer_if_reject, reject"],
         {"u@localhost": "450 4.7.0 <u@localhost>: Recipient address rejected: defer_if_reject requested"}),
    Case("defer_if_reject-then-permit", [OUTSIDE, "smtpd_recipient_restrictions = defer_if_reject, permit"],
         {"u@localhost": RCPT_OK, "eod": QUEUED}, delivered={"u": 1}),
    Case("warn_if_reject", [OUTSIDE, "smtpd_recipient_restrictions = warn_if_reject reject, permit"],
         {"u@localhost": RCPT_OK, "eod": QUEUED}, delivered={"u": 1},
         log=[f"reject_warning: RCPT from {CLIENT}: 554 5.7.1 <u@localhost>: Recipient address rejected: "
              "Access denied; from=<s@example.org> to=<u@localhost> proto=ESMTP helo=<client.example>"]),
    # ---- networks and destinations -------------------------------------------
    Case("permit_mynetworks-inside", ["mynetworks = 127.0.0.0/8",
                                      "smtpd_recipient_restrictions = permit_mynetworks, reject"],
         {"u@localhost": RCPT_OK, "eod": QUEUED}, delivered={"u": 1}),
    Case("permit_mynetworks-outside", [OUTSIDE, "smtpd_recipient_restrictions = permit_mynetworks, reject"],
         {"u@localhost": "554 5.7.1 <u@localhost>: Recipient address rejected: Access denied"}),
    Case("reject_unauth_destination", [OUTSIDE, "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination"],
         {"u@remote.example": "554 5.7.1 <u@remote.example>: Relay access denied", "u@localhost": RCPT_OK,
          "eod": QUEUED},
         rcpts=["u@remote.example", "u@localhost"], delivered={"u": 1}),
    Case("defer_unauth_destination", [OUTSIDE, "smtpd_relay_restrictions = permit_mynetworks, defer_unauth_destination"],
         {"u@remote.example": "454 4.7.1 <u@remote.example>: Relay access denied", "u@localhost": RCPT_OK},
         rcpts=["u@remote.example", "u@localhost"]),
    Case("reject_unauth_destination-mynetworks-relays", ["mynetworks = 127.0.0.0/8",
         "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination"],
         {"u@remote.example": RCPT_OK}, rcpts=["u@remote.example"]),
    Case("permit_auth_destination", [OUTSIDE, "smtpd_relay_restrictions = permit_auth_destination, reject"],
         {"u@localhost": RCPT_OK,
          "u@remote.example": "554 5.7.1 <u@remote.example>: Recipient address rejected: Access denied"},
         rcpts=["u@localhost", "u@remote.example"]),
    # ---- HELO, sender, recipient syntax ----------------------------------------
    Case("reject_non_fqdn_helo_hostname", [OUTSIDE, "smtpd_helo_restrictions = reject_non_fqdn_helo_hostname"],
         {"ehlo": "250 " , "u@localhost": "504 5.5.2 <c>: Helo command rejected: need fully-qualified hostname"},
         helo="c"),
    Case("reject_non_fqdn_helo_hostname-fqdn", [OUTSIDE, "smtpd_helo_restrictions = reject_non_fqdn_helo_hostname"],
         {"u@localhost": RCPT_OK}, helo="client.example"),
    Case("reject_invalid_helo_hostname", [OUTSIDE, "smtpd_helo_restrictions = reject_invalid_helo_hostname"],
         {"u@localhost": "501 5.5.2 <bad..name>: Helo command rejected: Invalid name"}, helo="bad..name"),
    Case("reject_non_fqdn_sender", [OUTSIDE, "smtpd_sender_restrictions = reject_non_fqdn_sender"],
         {"mail": MAIL_OK, "u@localhost": "504 5.5.2 <s@nodot>: Sender address rejected: need fully-qualified address"},
         sender="s@nodot"),
    Case("reject_non_fqdn_sender-null", [OUTSIDE, "smtpd_sender_restrictions = reject_non_fqdn_sender"],
         {"u@localhost": RCPT_OK}, sender=""),
    Case("reject_non_fqdn_recipient", [OUTSIDE, "smtpd_recipient_restrictions = reject_non_fqdn_recipient"],
         {"u@localhost": "504 5.5.2 <u@localhost>: Recipient address rejected: need fully-qualified address"}),
    # ---- unlisted users ---------------------------------------------------------
    Case("reject_unlisted_recipient-inline", [OUTSIDE, "local_recipient_maps = inline:{known@localhost=ok}",
                                              "smtpd_reject_unlisted_recipient = no",
                                              "smtpd_recipient_restrictions = reject_unlisted_recipient"],
         {"other@localhost": "550 5.1.1 <other@localhost>: Recipient address rejected: User unknown in local "
                             "recipient table",
          "known@localhost": RCPT_OK, "eod": QUEUED},
         rcpts=["other@localhost", "known@localhost"], delivered={"known": 1}),
    Case("reject_unlisted_recipient-texthash", [OUTSIDE, "local_recipient_maps = texthash:" + table("users"),
                                                "smtpd_recipient_restrictions = reject_unlisted_recipient"],
         {"other@localhost": "550 5.1.1 <other@localhost>: Recipient address rejected: User unknown in local "
                             "recipient table",
          "known@localhost": RCPT_OK},
         tables={"users": "known ok\n"}, rcpts=["other@localhost", "known@localhost"]),
    Case("reject_unlisted_sender", [OUTSIDE, "local_recipient_maps = inline:{known@localhost=ok}",
                                    "smtpd_sender_restrictions = reject_unlisted_sender"],
         {"mail": MAIL_OK,
          "known@localhost": "550 5.1.0 <other@localhost>: Sender address rejected: User unknown in local recipient table"},
         sender="other@localhost", rcpts=["known@localhost"]),
    Case("reject_unlisted_sender-listed", [OUTSIDE, "local_recipient_maps = inline:{known@localhost=ok}",
                                           "smtpd_sender_restrictions = reject_unlisted_sender"],
         {"known@localhost": RCPT_OK}, sender="known@localhost", rcpts=["known@localhost"]),
    # ---- access tables: each kind -------------------------------------------------
    Case("check_client_access-cidr", [OUTSIDE, "smtpd_client_restrictions = check_client_access cidr:" + table("clients")],
         {"mail": MAIL_OK, "u@localhost": f"554 5.7.1 <{CLIENT}>: Client host rejected: cidr says no"},
         tables={"clients": "192.0.2.0/24 OK\n127.0.0.0/8 REJECT cidr says no\n"}),
    Case("check_client_access-inline-ok", [OUTSIDE, "smtpd_client_restrictions = check_client_access "
                                           "inline:{127.0.0.1=OK}, reject"],
         {"u@localhost": RCPT_OK}),
    Case("check_helo_access-regexp", [OUTSIDE, "smtpd_helo_restrictions = check_helo_access regexp:" + table("helo")],
         {"u@localhost": "550 5.7.1 <bad.helo.example>: Helo command rejected: go away helo"},
         tables={"helo": "/^bad\\.helo\\.example$/ 550 go away helo\n"}, helo="bad.helo.example"),
    Case("check_sender_access-pcre", [OUTSIDE, "smtpd_sender_restrictions = check_sender_access pcre:" + table("senders")],
         {"u@localhost": "554 5.7.1 <a@spam.example>: Sender address rejected: pcre spam"},
         tables={"senders": "/@spam\\.example$/ REJECT pcre spam\n"}, sender="a@spam.example"),
    Case("check_sender_access-pcre-nomatch", [OUTSIDE, "smtpd_sender_restrictions = check_sender_access pcre:" + table("senders")],
         {"u@localhost": RCPT_OK},
         tables={"senders": "/@spam\\.example$/ REJECT pcre spam\n"}, sender="a@ham.example"),
    # ---- access actions (check_recipient_access texthash:/inline:) ------------------
    Case("action-REJECT-text", [OUTSIDE, "smtpd_recipient_restrictions = check_recipient_access texthash:" + table("acc")],
         {"reject@localhost": "554 5.7.1 <reject@localhost>: Recipient address rejected: no such luck",
          "rejectbare@localhost": "554 5.7.1 <rejectbare@localhost>: Recipient address rejected: Access denied"},
         tables={"acc": ACCESS_TEXTHASH}, rcpts=["reject@localhost", "rejectbare@localhost"]),
    Case("action-DEFER", [OUTSIDE, "smtpd_recipient_restrictions = check_recipient_access texthash:" + table("acc")],
         {"defer@localhost": "450 4.7.1 <defer@localhost>: Recipient address rejected: Access denied",
          "defertext@localhost": "450 4.7.1 <defertext@localhost>: Recipient address rejected: come back later"},
         tables={"acc": ACCESS_TEXTHASH}, rcpts=["defer@localhost", "defertext@localhost"]),
    Case("action-4NN-5NN", [OUTSIDE, "smtpd_recipient_restrictions = check_recipient_access texthash:" + table("acc")],
         {"c4@localhost": "451 4.7.9 <c4@localhost>: Recipient address rejected: four text",
          "c5@localhost": "550 5.7.9 <c5@localhost>: Recipient address rejected: five text",
          "c5bare@localhost": "550 5.7.1 <c5bare@localhost>: Recipient address rejected: plain text"},
         tables={"acc": ACCESS_TEXTHASH}, rcpts=["c4@localhost", "c5@localhost", "c5bare@localhost"]),
    Case("action-OK-DUNNO-inline", [OUTSIDE, "smtpd_recipient_restrictions = check_recipient_access "
                                    "inline:{ok@localhost=OK, dunno@localhost=DUNNO}, reject"],
         {"ok@localhost": RCPT_OK,
          "dunno@localhost": "554 5.7.1 <dunno@localhost>: Recipient address rejected: Access denied",
          "eod": QUEUED},
         rcpts=["ok@localhost", "dunno@localhost"], delivered={"ok": 1}),
    Case("action-HOLD", [OUTSIDE, "smtpd_recipient_restrictions = check_recipient_access texthash:" + table("acc")],
         {"hold@localhost": RCPT_OK, "eod": QUEUED}, tables={"acc": ACCESS_TEXTHASH}, rcpts=["hold@localhost"],
         hold=True,
         log=[f"hold: RCPT from {CLIENT}: <hold@localhost>: Recipient address triggers HOLD action; "
              "from=<s@example.org> to=<hold@localhost> proto=ESMTP helo=<client.example>"]),
    Case("action-DISCARD", [OUTSIDE, "smtpd_recipient_restrictions = check_recipient_access texthash:" + table("acc")],
         {"discard@localhost": RCPT_OK, "eod": re.compile(r"250 2\.0\.0 Ok")}, tables={"acc": ACCESS_TEXTHASH},
         rcpts=["discard@localhost"], delivered={"discard": 0},
         log=[f"discard: RCPT from {CLIENT}: <discard@localhost>: Recipient address triggers DISCARD action; "
              "from=<s@example.org> to=<discard@localhost> proto=ESMTP helo=<client.example>"]),
    Case("action-REDIRECT", [OUTSIDE, "smtpd_recipient_restrictions = check_recipient_access texthash:" + table("acc")],
         {"redir@localhost": RCPT_OK, "eod": QUEUED}, tables={"acc": ACCESS_TEXTHASH},
         rcpts=["redir@localhost"], delivered={"target": 1, "redir": 0},
         log=[f"redirect: RCPT from {CLIENT}: <redir@localhost>: Recipient address triggers REDIRECT "
              "target@localhost; from=<s@example.org> to=<redir@localhost> proto=ESMTP helo=<client.example>"]),
    Case("action-PREPEND", [OUTSIDE, "smtpd_recipient_restrictions = check_recipient_access texthash:" + table("acc")],
         {"prep@localhost": RCPT_OK, "eod": QUEUED}, tables={"acc": ACCESS_TEXTHASH},
         rcpts=["prep@localhost"], delivered={"prep": 1}),
    Case("action-WARN", [OUTSIDE, "smtpd_recipient_restrictions = check_recipient_access texthash:" + table("acc")],
         {"warn@localhost": RCPT_OK, "eod": QUEUED}, tables={"acc": ACCESS_TEXTHASH},
         rcpts=["warn@localhost"], delivered={"warn": 1},
         log=[f"warn: RCPT from {CLIENT}: careful now; from=<s@example.org> to=<warn@localhost> proto=ESMTP "
              "helo=<client.example>"]),
    # ---- restriction classes ------------------------------------------------------
    Case("smtpd_restriction_classes", [OUTSIDE, "smtpd_restriction_classes = strict", "strict = reject_non_fqdn_sender, reject",
                                       "smtpd_recipient_restrictions = check_recipient_access texthash:" + table("acc")],
         {"cls@localhost": "504 5.5.2 <s@nodot>: Sender address rejected: need fully-qualified address",
          "u@localhost": RCPT_OK},
         tables={"acc": ACCESS_TEXTHASH}, sender="s@nodot", rcpts=["cls@localhost", "u@localhost"]),
    Case("smtpd_restriction_classes-reject", [OUTSIDE, "smtpd_restriction_classes = strict", "strict = reject",
                                              "smtpd_recipient_restrictions = check_recipient_access texthash:" + table("acc")],
         {"cls@localhost": "554 5.7.1 <cls@localhost>: Recipient address rejected: Access denied"},
         tables={"acc": ACCESS_TEXTHASH}, rcpts=["cls@localhost"]),
    # ---- smtpd_delay_reject ---------------------------------------------------------
    Case("delay_reject-yes-client", [OUTSIDE, "smtpd_delay_reject = yes", "smtpd_client_restrictions = reject"],
         {"ehlo": "250 ", "mail": MAIL_OK,
          "u@localhost": f"554 5.7.1 <{CLIENT}>: Client host rejected: Access denied"}),
    Case("delay_reject-yes-helo", [OUTSIDE, "smtpd_delay_reject = yes", "smtpd_helo_restrictions = reject"],
         {"ehlo": "250 ", "mail": MAIL_OK,
          "u@localhost": "554 5.7.1 <client.example>: Helo command rejected: Access denied"}),
    Case("delay_reject-yes-sender", [OUTSIDE, "smtpd_delay_reject = yes", "smtpd_sender_restrictions = reject"],
         {"mail": MAIL_OK, "u@localhost": "554 5.7.1 <s@example.org>: Sender address rejected: Access denied"}),
    Case("delay_reject-no-helo", [OUTSIDE, "smtpd_delay_reject = no", "smtpd_helo_restrictions = reject"],
         {"ehlo": "554 5.7.1 <client.example>: Helo command rejected: Access denied"}),
    Case("delay_reject-no-sender", [OUTSIDE, "smtpd_delay_reject = no", "smtpd_sender_restrictions = reject"],
         {"mail": "554 5.7.1 <s@example.org>: Sender address rejected: Access denied"}),
    # ---- DATA and end of data -------------------------------------------------------
    Case("smtpd_data_restrictions", [OUTSIDE, "smtpd_data_restrictions = reject"],
         {"u@localhost": RCPT_OK, "data": "554 5.7.1 <DATA>: Data command rejected: Access denied"},
         delivered={"u": 0}),
    Case("smtpd_data_restrictions-defer_if_permit", [OUTSIDE, "smtpd_data_restrictions = defer_if_permit, permit"],
         {"data": "450 4.7.0 <DATA>: Data command rejected: defer_if_permit requested"}),
    Case("smtpd_end_of_data_restrictions", [OUTSIDE, "smtpd_end_of_data_restrictions = reject"],
         {"data": "354", "eod": "554 5.7.1 <END-OF-MESSAGE>: End-of-data rejected: Access denied"},
         delivered={"u": 0}),
    Case("smtpd_end_of_data_restrictions-permit", [OUTSIDE, "smtpd_end_of_data_restrictions = permit"],
         {"eod": QUEUED}, delivered={"u": 1}),
]


def check_replies(case: Case, got: dict) -> None:
    for key, want in case.expect.items():
        value = got.get(key)
        if isinstance(want, str) and want.endswith(" ") and value is not None:
            assert value.startswith(want), (key, value, got)
        else:
            assert matches(want, value), f"{key}: want {want!r}, got {value!r}\nall replies: {got}"


# DISCARD: cleanup names the message (queue ID in the reply, as Postfix) and keeps nothing.
PARAMS = [pytest.param(c, id=c.id) for c in CASES] + [
    pytest.param(Case("action-DISCARD-exact-reply",
                      [OUTSIDE, "smtpd_recipient_restrictions = check_recipient_access texthash:" + table("acc")],
                      {"discard@localhost": RCPT_OK, "eod": QUEUED}, tables={"acc": ACCESS_TEXTHASH},
                      rcpts=["discard@localhost"]),
                 id="action-DISCARD-exact-reply"),
]


@pytest.mark.parametrize("case", PARAMS)
def test_restriction(instance, case: Case):
    write_tables(instance, case.tables)
    inst = started(instance, *resolve(instance, case.settings))
    got = transact(inst.port, case.helo, case.sender, case.rcpts)
    check_replies(case, got)
    for user, count in case.delivered.items():
        if count:
            files = inst.wait_for_mail(user, count, timeout=20)
            if case.id == "action-PREPEND":
                msg = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.compat32)
                assert msg["X-Postern-Test"] == "prepended by access", files[0].read_bytes()
    if case.hold:
        q = inst.wait_for(lambda: [m for m in inst.postqueue_json() if m.get("queue_name") == "hold"],
                          timeout=20, what="message in the hold queue")
        assert q[0]["recipients"][0]["address"] == "hold@localhost", q
        assert not inst.new_messages("hold")
    for line in case.log:
        inst.wait_for(lambda: line in inst.log(), timeout=10, what=f"log line {line!r}")
    if any(c == 0 for c in case.delivered.values()):
        # Whatever was going to be delivered has had the time: the queue is empty.
        inst.wait_for(lambda: not inst.queue_files(), timeout=20, what="empty queue")
        time.sleep(0.5)
        for user, count in case.delivered.items():
            if count == 0:
                assert not inst.new_messages(user), f"{user} got mail"


# --------------------------------------------------------------------------- raw sessions

PIPELINING_REPLY = "503 5.5.0 <DATA>: Data command rejected: Improper use of SMTP command pipelining"


def test_reject_unauth_pipelining_allows_proper_use(instance):
    inst = started(instance, OUTSIDE, "smtpd_data_restrictions = reject_unauth_pipelining")
    # EHLO announced PIPELINING: MAIL, RCPT and DATA may come in one write.
    c = Raw(inst.port)
    assert c.cmd("EHLO client.example")[0] == 250
    c.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<u@localhost>\r\nDATA\r\n")
    assert c.reply() == (250, "250 2.1.0 Ok")
    assert c.reply() == (250, "250 2.1.5 Ok")
    assert c.reply()[0] == 354
    assert c.cmd(b"Subject: p\r\n\r\nx\r\n.")[0] == 250
    # HELO, one command at a time, is fine too.
    assert c.cmd("HELO client.example")[0] == 250
    assert c.cmd("MAIL FROM:<s@example.org>")[0] == 250
    assert c.cmd("RCPT TO:<u@localhost>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    assert c.cmd(b"Subject: p\r\n\r\nx\r\n.")[0] == 250
    c.cmd("QUIT")
    c.close()
    inst.wait_for_mail("u", 2)


def test_reject_unauth_pipelining_refuses_data_sent_with_message(instance):
    """After HELO (no PIPELINING), DATA sent together with the message is refused."""
    inst = started(instance, OUTSIDE, "smtpd_data_restrictions = reject_unauth_pipelining")
    c = Raw(inst.port)
    assert c.cmd("HELO client.example")[0] == 250
    assert c.cmd("MAIL FROM:<s@example.org>")[0] == 250
    assert c.cmd("RCPT TO:<u@localhost>")[0] == 250
    c.send(b"DATA\r\nSubject: p\r\n")
    code, text = c.reply()
    assert code == 503 and text.startswith("503 5.5.0 "), text
    c.close()


def test_reject_unauth_pipelining_reply_text(instance):
    inst = started(instance, OUTSIDE, "smtpd_data_restrictions = reject_unauth_pipelining")
    c = Raw(inst.port)
    assert c.cmd("HELO client.example")[0] == 250
    assert c.cmd("MAIL FROM:<s@example.org>")[0] == 250
    assert c.cmd("RCPT TO:<u@localhost>")[0] == 250
    c.send(b"DATA\r\nSubject: p\r\n")
    assert c.reply() == (503, PIPELINING_REPLY)
    c.close()


@pytest.mark.parametrize("batch", [
    (b"HELO client.example\r\n", b"MAIL FROM:<s@example.org>\r\nRCPT TO:<u@localhost>\r\nDATA\r\n"),
    (b"", b"EHLO client.example\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<u@localhost>\r\nDATA\r\n"),
], ids=["helo-batch", "ehlo-batch"])
def test_reject_unauth_pipelining_sticky(instance, batch):
    inst = started(instance, OUTSIDE, "smtpd_data_restrictions = reject_unauth_pipelining")
    c = Raw(inst.port)
    first, rest = batch
    if first:
        assert c.cmd(first.rstrip(b"\r\n"))[0] == 250
    c.send(rest)
    replies = [c.reply() for _ in range(rest.count(b"\r\n"))]
    c.close()
    assert replies[-1][0] == 503, replies
    assert "improper command pipelining after" in inst.log()


def test_delay_reject_no_client_refused_at_connect(instance):
    inst = started(instance, OUTSIDE, "smtpd_delay_reject = no", "smtpd_client_restrictions = reject")
    c = Raw(inst.port)
    assert c.greeting == (554, f"554 5.7.1 <{CLIENT}>: Client host rejected: Access denied"), c.greeting
    assert c.cmd("EHLO client.example") == (503, f"503 5.7.0 Error: access denied for {CLIENT}")
    assert c.cmd("MAIL FROM:<s@example.org>") == (503, f"503 5.7.0 Error: access denied for {CLIENT}")
    assert c.cmd("QUIT")[0] == 221
    c.close()


def test_delay_reject_no_client_greeting(instance):
    """The part of the above that Postern gets right: the greeting is the reject."""
    inst = started(instance, OUTSIDE, "smtpd_delay_reject = no", "smtpd_client_restrictions = reject")
    c = Raw(inst.port)
    assert c.greeting == (554, f"554 5.7.1 <{CLIENT}>: Client host rejected: Access denied"), c.greeting
    c.close()
    inst.wait_for(lambda: f"NOQUEUE: reject: CONNECT from {CLIENT}: 554 5.7.1 <{CLIENT}>: Client host rejected: "
                          "Access denied" in inst.log(), timeout=10, what="connect reject logged")


@pytest.mark.parametrize("word,want", [
    ("reject", "554 5.7.1 <example.com>: Etrn command rejected: Access denied"),
    ("check_etrn_access inline:{{example.com=REJECT no flush for you}}",
     "554 5.7.1 <example.com>: Etrn command rejected: no flush for you"),
    ("defer", "450 4.3.2 <example.com>: Etrn command rejected: Try again later"),
])
def test_smtpd_etrn_restrictions(instance, word, want):
    inst = started(instance, OUTSIDE, f"smtpd_etrn_restrictions = {word}")
    c = Raw(inst.port)
    assert c.cmd("EHLO client.example")[0] == 250
    code, text = c.cmd("ETRN example.com")
    assert text == want, text
    assert c.cmd("QUIT")[0] == 221
    c.close()


# --------------------------------------------------------------------------- swaks

def swaks(port: int, *args: str) -> str:
    r = subprocess.run(["swaks", "-s", "127.0.0.1", "-p", str(port), "--helo", "client.example",
                        "--timeout", "15", *args], capture_output=True, text=True, timeout=60)
    return r.stdout + r.stderr


@pytest.mark.skipif(not shutil.which("swaks"), reason="swaks not installed")
@pytest.mark.parametrize("settings,args,want", [
    ([OUTSIDE, "smtpd_sender_restrictions = check_sender_access pcre:@@senders@@"],
     ["-f", "a@spam.example", "-t", "u@localhost"],
     "<** 554 5.7.1 <a@spam.example>: Sender address rejected: pcre spam"),
    ([OUTSIDE, "smtpd_recipient_restrictions = defer_if_permit, permit"],
     ["-f", "s@example.org", "-t", "u@localhost"],
     "<** 450 4.7.0 <u@localhost>: Recipient address rejected: defer_if_permit requested"),
    ([OUTSIDE, "smtpd_end_of_data_restrictions = reject"],
     ["-f", "s@example.org", "-t", "u@localhost"],
     "<** 554 5.7.1 <END-OF-MESSAGE>: End-of-data rejected: Access denied"),
], ids=["pcre-sender", "defer_if_permit", "end_of_data"])
def test_swaks_refusals(instance, settings, args, want):
    write_tables(instance, {"senders": "/@spam\\.example$/ REJECT pcre spam\n"})
    inst = started(instance, *resolve(instance, settings))
    out = swaks(inst.port, *args)
    assert want in out, out


@pytest.mark.skipif(not shutil.which("swaks"), reason="swaks not installed")
def test_swaks_prepend_delivered(instance):
    write_tables(instance, {"acc": ACCESS_TEXTHASH})
    inst = started(instance, OUTSIDE, f"smtpd_recipient_restrictions = check_recipient_access texthash:{instance.root / 'acc'}")
    out = swaks(inst.port, "-f", "s@example.org", "-t", "prep@localhost")
    assert "<-  250 2.0.0 Ok: queued as" in out, out
    raw = inst.wait_for_mail("prep", 1)[0].read_bytes()
    assert b"X-Postern-Test: prepended by access\n" in raw.replace(b"\r\n", b"\n"), raw


# --------------------------------------------------------------------------- policyd-spf

POLICYD_SPF = "/usr/bin/policyd-spf"
SPF_ZONE = {
    ("fail.test", "TXT"): ["v=spf1 -all"],
    ("pass.test", "TXT"): ["v=spf1 +all"],
}


class SpawnServer:
    """A TCP server on 127.0.0.1 that runs `argv` per connection with the socket as
    its stdin and stdout (what Postfix's spawn(8) would do for a unix socket)."""

    def __init__(self, argv: list[str]):
        self.argv = argv
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.procs: list[subprocess.Popen] = []
        self.stderr = tempfile.TemporaryFile()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)

    def errors(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(None)
            with conn:
                self.procs.append(subprocess.Popen(self.argv, stdin=conn.fileno(), stdout=conn.fileno(),
                                                   stderr=self.stderr))


def spf_ready() -> str | None:
    if not os.path.exists(POLICYD_SPF):
        return f"{POLICYD_SPF} not installed (Debian package postfix-policyd-spf-python)"
    if os.geteuid() != 0:
        return "needs root: unshare -m and a DNS server on 127.0.0.2:53"
    if not shutil.which("unshare") or not shutil.which("mount"):
        return "unshare/mount not available"
    return None


@pytest.fixture
def spf_policy_server(tmp_path):
    reason = spf_ready()
    if reason:
        pytest.skip(reason)
    from dnsserver import DnsServer
    try:
        dns = DnsServer(SPF_ZONE, host="127.0.0.2", port=53)
    except OSError as e:
        pytest.skip(f"cannot bind a DNS server on 127.0.0.2:53: {e}")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.2\noptions timeout:2 attempts:1\n")
    conf = tmp_path / "policyd-spf.conf"
    conf.write_text("debugLevel = 1\nTestOnly = 1\nHELO_reject = Null\nMail_From_reject = Fail\n"
                    "PermError_reject = False\nTempError_Defer = False\nskip_addresses = 192.0.2.255/32\n"
                    "Lookup_Time = 5\n")
    # A private mount namespace whose /etc/resolv.conf names only our server: the
    # machine's own resolver is never asked.
    script = f'mount --bind "$1" /etc/resolv.conf && exec {POLICYD_SPF} "$2"'
    argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", str(resolv), str(conf)]
    with dns as _port, SpawnServer(argv) as srv:
        yield srv, dns


def test_check_policy_service_policyd_spf(instance, spf_policy_server):
    srv, dns = spf_policy_server
    inst = started(instance, OUTSIDE,
                   f"smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:{srv.port}, permit")
    got = transact(inst.port, "client.example", "a@fail.test", ["u@localhost"])
    assert got["mail"] == MAIL_OK
    want = re.compile(r"550 5\.7\.23 <u@localhost>: Recipient address rejected: Message rejected due to: "
                      r"SPF fail - not authorized\. Please see http://www\.open-?spf\.(net|org)/Why\?s=mfrom;"
                      r"id=a@fail\.test;ip=127\.0\.0\.1;r=.*$")
    assert want.match(got["u@localhost"]), (got, srv.errors())
    print("policyd-spf refusal:", got["u@localhost"])

    got = transact(inst.port, "client.example", "b@pass.test", ["spf@localhost"])
    assert got["spf@localhost"] == RCPT_OK, (got, srv.errors())
    assert QUEUED.match(got["eod"]), got
    raw = inst.wait_for_mail("spf", 1)[0].read_bytes()
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    spf = msg["Received-SPF"]
    assert spf is not None, raw
    spf = " ".join(spf.split())
    print("Received-SPF:", spf)
    assert spf.startswith("Pass (mailfrom) identity=mailfrom; client-ip=127.0.0.1; helo=client.example; "
                          "envelope-from=b@pass.test;"), spf
    # The answers came from our DNS server.
    assert ("fail.test", "TXT") in dns.queries and ("pass.test", "TXT") in dns.queries, dns.queries
