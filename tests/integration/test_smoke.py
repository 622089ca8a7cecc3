"""Smoke test: one message from sendmail to a local Maildir, end to end."""

from __future__ import annotations

import email.policy
from email.parser import BytesParser

# No line holding a lone "." : without -i/-oi, sendmail takes it as the end of input
# (as Postfix's does). A line starting with ".." passes unchanged.
BODY = b"first line of the body\n\nline after an empty line\n..two dots\n.x\nlast line\n"
MESSAGE = b"Subject: smoke test\nTo: user@localhost\n\n" + BODY


def test_sendmail_to_local_maildir(instance):
    instance.start()
    assert instance.status()

    instance.sendmail(["-f", "sender@localhost", "user@localhost"], MESSAGE)
    files = instance.wait_for_mail("user", 1)
    assert len(files) == 1, files

    box = instance.maildir("user")
    keys = box.keys()
    assert len(keys) == 1, keys
    msg = BytesParser(policy=email.policy.compat32).parsebytes(box.get_bytes(keys[0]))
    for header in ("Return-Path", "Delivered-To", "Message-ID", "Date", "From", "Received"):
        assert msg[header], f"missing {header} header in:\n{msg.as_string()[:2000]}"
    assert "sender@localhost" in msg["Return-Path"], msg["Return-Path"]
    assert "user@localhost" in msg["Delivered-To"], msg["Delivered-To"]
    assert msg["Subject"] == "smoke test"
    body = msg.get_payload(decode=False).encode().replace(b"\r\n", b"\n")
    assert body == BODY, body

    out = instance.postqueue_p()
    assert "Mail queue is empty" in out, out

    seen = instance.processes()
    assert seen, "no process of the instance was ever seen"
    instance.stop()
    assert not instance.status()
    left = instance.leftover_processes()
    assert not left, "processes left after stop:\n" + "\n".join(p.describe() for p in left)
