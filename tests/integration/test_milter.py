"""test_milter.py -- milters in a real instance (smtpd_milters, smtpd_milter_maps,
non_smtpd_milters) with the scripted raw-protocol milter tests/integration/milterd.py.

* every modification lands in the delivered Maildir message (header add/insert/change/
  delete, body replacement, recipient add with ESMTP arguments and delete, sender change),
  through a chain of two milters (inet: and unix:), the second seeing the first's edits,
  neither seeing cleanup's own Received: header;
* the reply at each stage with Postfix's SMTP reply and log line (CONNECT/HELO refusals
  given at MAIL, RCPT, DATA, END-OF-MESSAGE reject/tempfail, discard, quarantine → hold
  shown by postqueue -p with `!`);
* milter_default_action for a milter that is down, answers garbage or stalls (small
  timeouts);
* receive_override_options = no_milters and smtpd_milter_maps (DISABLE) turn milters off;
* non_smtpd_milters inspect and edit mail from sendmail.

Every wait is bounded; the milter threads end with the test (Milterd.stop).
"""

from __future__ import annotations

import email.policy
import smtplib
import socket
from email.parser import BytesParser

import pytest

from milterd import Milterd
from postern import MAX_WAIT, free_port
from test_content_filter import smtp_line_option
from test_smtp_client import postconf

MSG = (b"From: s@example.org\r\nTo: user@localhost\r\nSubject: hello\r\n"
       b"X-Old: drop me\r\n\r\noriginal body\r\n")


def smtp(inst) -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", inst.port, local_hostname="client.example",
                        timeout=MAX_WAIT)


def parse(path) -> email.message.Message:
    return BytesParser(policy=email.policy.compat32).parsebytes(path.read_bytes())


def start(inst, *settings: str) -> None:
    postconf(inst, "milter_connect_timeout = 2s", "milter_command_timeout = 2s",
             "milter_content_timeout = 3s", *settings)
    inst.start()


def messages(m: Milterd) -> list[dict]:
    return [msg for s in m.sessions for msg in s["messages"]]


def test_chain_modifications_land_in_the_queue_file(instance):
    first = {"on": {"eom": {"modify": [
        {"add_header": ["X-First", "one"]},
        {"insert_header": [0, "X-Top", "top"]},
        {"change_header": [1, "Subject", "changed"]},
        {"delete_header": [1, "X-Old"]},
        {"replace_body": "new body\r\nline two\r\n"},
        {"add_rcpt_par": ["<other@localhost>", "NOTIFY=NEVER"]},
        {"change_from": ["<new-sender@example.org>", ""]},
    ]}}}
    second = {"on": {"eom": {"modify": [{"add_header": ["X-Second", "two"]},
                                        {"del_rcpt": "<gone@localhost>"}]}}}
    sock = str(instance.root / "second.sock")
    with Milterd(first) as m1, Milterd(second, listen=f"unix:{sock}") as m2:
        start(instance, f"smtpd_milters = {m1.endpoint}, {m2.endpoint}")
        with smtp(instance) as c:
            c.sendmail("s@example.org", ["user@localhost", "gone@localhost"], MSG)
        user = parse(instance.wait_for_mail("user", 1)[0])
        other = parse(instance.wait_for_mail("other", 1)[0])
        seen2 = messages(m2)[0]
        seen1 = messages(m1)[0]
    for msg in (user, other):
        assert msg["X-First"] == "one" and msg["X-Second"] == "two", msg.as_string()
        assert msg["Subject"] == "changed" and msg["X-Old"] is None
        assert msg.get_payload().replace("\r\n", "\n") == "new body\nline two\n"
        assert "new-sender@example.org" in msg["Return-Path"]
    # An insert at index 0 counts cleanup's hidden Received: header (Postfix's semantics):
    # X-Top lands above it.
    names = [k for k, _ in user.items()]
    assert names.index("X-Top") + 1 == names.index("Received"), names
    assert not (instance.maildir_path("gone") / "new").exists() or not instance.new_messages("gone")
    # Neither milter saw cleanup's Received: header; the second saw the first's edits.
    assert "Received" not in [h[0] for h in seen1["headers"]]
    assert ["X-First", "one"] in seen2["headers"] or ["X-First", " one"] in seen2["headers"]
    assert "new body" in seen2["body"]
    assert seen1["macros"].get("i"), seen1
    log = instance.log()
    assert "milter-reject" not in log


REPLIES = {"on": {
    "mail": [{"if": "tempfail@", "do": "tempfail"}],
    "rcpt": [{"if": "bad@", "do": {"reply": "550 5.7.1 bad recipient"}},
             {"if": "multi@", "do": {"reply": "551-5.7.1 first\r\n551 5.7.1 second"}}],
    "eom": [{"if": "REJECTME", "do": {"reply": "554 5.7.1 go away"}},
            {"if": "LATER", "do": "tempfail"},
            {"if": "DISCARDME", "do": "discard"},
            {"if": "HOLDME", "do": {"quarantine": "looks odd"}}],
}}


def test_replies_at_each_stage(instance):
    with Milterd(REPLIES) as m:
        start(instance, f"smtpd_milters = {m.endpoint}")
        with smtp(instance) as c:
            c.ehlo()
            assert c.mail("tempfail@example.org")[0] == 451
            c.rset()
            assert c.mail("s@example.org")[0] == 250
            code, text = c.rcpt("bad@localhost")
            assert (code, text) == (550, b"5.7.1 bad recipient"), text
            code, text = c.rcpt("multi@localhost")
            assert (code, text) == (551, b"5.7.1 first\n5.7.1 second"), text
            assert c.rcpt("user@localhost")[0] == 250
            assert c.data(MSG.replace(b"original", b"REJECTME")) == (554, b"5.7.1 go away")
            c.mail("s@example.org")
            c.rcpt("user@localhost")
            code, text = c.data(MSG.replace(b"original", b"LATER"))
            assert (code, text) == (451, b"4.7.1 Service unavailable - try again later"), text
            c.mail("s@example.org")
            c.rcpt("user@localhost")
            assert c.data(MSG.replace(b"original", b"DISCARDME"))[0] == 250
            c.mail("s@example.org")
            c.rcpt("user@localhost")
            assert c.data(MSG.replace(b"original", b"HOLDME"))[0] == 250
        instance.wait_for(lambda: "milter-hold" in instance.log(), what="hold logged")
    log = instance.log()
    assert ("NOQUEUE: milter-reject: RCPT from localhost[127.0.0.1]: 550 5.7.1 bad recipient; "
            "from=<s@example.org> to=<bad@localhost> proto=ESMTP helo=<client.example>") in log, log
    assert "NOQUEUE: milter-reject: MAIL from localhost[127.0.0.1]: 451 4.7.1" in log, log
    assert ": milter-reject: END-OF-MESSAGE from localhost[127.0.0.1]: 5.7.1 go away; " \
           "from=<s@example.org> to=<user@localhost> proto=ESMTP helo=<client.example>" in log, log
    assert ": milter-discard: END-OF-MESSAGE from localhost[127.0.0.1]: " \
           "milter triggers DISCARD action;" in log, log
    assert ": milter-hold: END-OF-MESSAGE from localhost[127.0.0.1]: " \
           "milter triggers HOLD action;" in log, log
    held = instance.postqueue_p()
    assert "!" in held and "s@example.org" in held, held
    assert not instance.new_messages("user")


def test_connect_refusal(instance):
    """A 5xx at CONNECT: `554 HOST ESMTP not accepting connections`, then MAIL gets
    `550 5.7.1 Command rejected` (Sendmail compatibility, as Postfix)."""
    with Milterd({"on": {"connect": "reject"}}) as m:
        start(instance, f"smtpd_milters = {m.endpoint}")
        with socket.create_connection(("127.0.0.1", instance.port), timeout=MAX_WAIT) as s:
            f = s.makefile("rb")
            greeting = f.readline()
            s.sendall(b"EHLO x\r\n")
            while not f.readline().startswith(b"250 "):
                pass
            s.sendall(b"MAIL FROM:<s@example.org>\r\n")
            mail = f.readline()
            s.sendall(b"QUIT\r\n")
            f.readline()
    assert greeting.startswith(b"554 ") and b"ESMTP not accepting connections" in greeting, greeting
    assert mail.startswith(b"550 5.7.1 Command rejected"), mail
    log = instance.log()
    assert "NOQUEUE: milter-reject: CONNECT from localhost[127.0.0.1]:" in log, log
    assert "NOQUEUE: milter-reject: MAIL from localhost[127.0.0.1]: 550 5.7.1 Command rejected;" in log


@pytest.mark.parametrize("fault,action,want", [
    ("down", "tempfail", 451),
    ("down", "accept", 250),
    ("garbage", "reject", 550),
    ("stall", "tempfail", 451),
])
def test_default_action(instance, fault, action, want):
    if fault == "down":
        endpoint, m = f"inet:127.0.0.1:{free_port()}", None
    else:
        act = {"garbage": {"garbage": "ffff0001"}, "stall": {"stall": 5}}[fault]
        m = Milterd({"on": {"eom": act}}).start()
        endpoint = m.endpoint
    try:
        start(instance, f"smtpd_milters = {endpoint}", f"milter_default_action = {action}")
        with smtp(instance) as c:
            c.ehlo()
            code = c.mail("s@example.org")[0]
            if code == 250:
                c.rcpt("user@localhost")
                code, _ = c.docmd("DATA")
                assert code == 354
                c.send(MSG + b".\r\n")
                code, _ = c.getreply()
        assert code == want, (fault, action, code, instance.log_excerpt(30))
        if want == 250:
            instance.wait_for_mail("user", 1)
        log = instance.log()
        assert "warning:" in log and "milter" in log.lower(), log
    finally:
        if m:
            m.stop()


def test_no_milters_override_and_milter_maps(instance):
    maps = instance.root / "milter_maps.cidr"
    with Milterd({"on": {"eom": {"modify": [{"add_header": ["X-Seen", "yes"]}]}}}) as m:
        maps.write_text(f"127.0.0.1 DISABLE\n0.0.0.0/0 {m.endpoint}\n")
        smtp_line_option(instance, "-o receive_override_options=no_milters")
        start(instance, f"smtpd_milters = {m.endpoint}")
        with smtp(instance) as c:
            c.sendmail("s@example.org", ["user@localhost"], MSG)
        msg = parse(instance.wait_for_mail("user", 1)[0])
        assert msg["X-Seen"] is None and not m.sessions
        instance.stop()
        master = instance.root / "master.cf"
        master.write_text(master.read_text().replace("    -o receive_override_options=no_milters\n", ""))
        postconf(instance, f"smtpd_milter_maps = cidr:{maps}")
        instance.start()
        with smtp(instance) as c:
            c.sendmail("s@example.org", ["user@localhost"], MSG)
        msgs = instance.wait_for_mail("user", 2)
        assert all(parse(p)["X-Seen"] is None for p in msgs) and not m.sessions


def test_non_smtpd_milters_on_sendmail_mail(instance):
    with Milterd({"on": {"eom": {"modify": [{"add_header": ["X-Local", "seen"]}]}}}) as m:
        start(instance, f"non_smtpd_milters = {m.endpoint}")
        instance.sendmail(["-f", "sender@localhost", "user@localhost"],
                          b"Subject: local\n\nbody\n")
        msg = parse(instance.wait_for_mail("user", 1)[0])
        events = [e["event"] for e in m.sessions[0]["events"]]
    assert msg["X-Local"] == "seen", msg.as_string()
    assert events[:3] == ["connect", "helo", "mail"], events
    connect = m.sessions[0]["events"][0]
    assert "localhost" in " ".join(map(str, connect.get("args", []))), connect
