"""Address rewriting and content checks in cleanup (issue 5 §2), through real
instances: sendmail (pickup path) and smtplib (smtpd path), checking the
delivered Maildir files, the queue (postqueue), and the maillog lines.

Tables are texthash:, inline:, regexp: and pcre: sources (no indexed files)."""

from __future__ import annotations

import email
import email.policy
import smtplib
import time

import pytest

from postern import MAX_WAIT
from test_smtp_client import Peer, postconf, wait_port, wait_queue_empty

BASE = ("myorigin = localhost", "mydomain = localhost", "recipient_delimiter = +")


def parse(raw: bytes) -> email.message.Message:
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def mail(inst, user: str, count: int = 1) -> list[email.message.Message]:
    return [parse(p.read_bytes()) for p in inst.wait_for_mail(user, count)]


def table(inst, name: str, text: str) -> str:
    p = inst.root / name
    p.write_text(text)
    p.chmod(0o644)
    return str(p)


def start(inst, *settings: str) -> None:
    postconf(inst, *BASE, *settings)
    inst.start()
    wait_port(inst.port)


def smtp_send(inst, sender: str, rcpts: list[str], body: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", inst.port, local_hostname="client.example", timeout=MAX_WAIT) as c:
        c.sendmail(sender, rcpts, body)


def test_canonical_masquerade_and_header_rewriting(instance):
    """sender/recipient/common canonical maps with their classes, masquerading
    with an exception, display names and comments kept in From/To/Cc/Reply-To."""
    canon = table(instance, "canonical", "joe@localhost Joe.Doe@localhost\n")
    rcanon = table(instance, "rcanonical", "@old.example @localhost\n")
    start(instance,
          f"sender_canonical_maps = texthash:{canon}",
          f"recipient_canonical_maps = texthash:{rcanon}",
          "canonical_maps = inline:{ bob@localhost=robert@localhost }",
          "masquerade_domains = !keep.example.com example.com",
          "masquerade_exceptions = root",
          "mydestination = localhost, example.com")
    msg = (b"From: Joe Sender <joe>\nReply-To: joe@host.example.com (home)\n"
           b"To: \"Ann A.\" <ann@old.example>, bob\nCc: root@host.example.com, x@a.keep.example.com\n"
           b"Subject: canon\n\nbody\n")
    instance.sendmail(["-f", "joe", "ann@old.example", "bob@localhost"], msg)
    ann = mail(instance, "ann")[0]
    robert = mail(instance, "robert")[0]
    assert ann["Return-Path"] == "<Joe.Doe@localhost>", ann["Return-Path"]
    assert ann["From"] == "Joe Sender <Joe.Doe@localhost>"
    assert ann["To"] == "\"Ann A.\" <ann@localhost>, robert@localhost"
    assert ann["Reply-To"] == "joe@example.com (home)"
    assert ann["Cc"] == "root@host.example.com, x@a.keep.example.com"
    assert robert["Subject"] == "canon"
    log = instance.log()
    assert "from=<Joe.Doe@localhost>" in log
    assert "to=<robert@localhost>, orig_to=<bob@localhost>" in log or "to=<robert@localhost>" in log


def test_canonical_classes_limit_what_is_rewritten(instance):
    start(instance,
          "canonical_maps = inline:{ joe@localhost=jdoe@localhost }",
          "canonical_classes = header_sender")
    instance.sendmail(["-f", "joe", "joe"], b"From: joe\n\nx\n")
    m = mail(instance, "joe")[0]
    assert m["Return-Path"] == "<joe@localhost>"
    assert m["From"] == "jdoe@localhost"


def test_virtual_alias_expansion(instance):
    """Recursive expansion, one address to many, @domain catch-all, self
    reference, extension propagation, duplicate elimination."""
    virt = table(instance, "virtual",
                 "team@virt.example   ann@localhost, lead@virt.example, dup@virt.example\n"
                 "lead@virt.example   bob@localhost, lead@localhost\n"
                 "dup@virt.example    ann@localhost\n"
                 "self@localhost      self@localhost, carol@localhost\n"
                 "@catch.example      dave@localhost\n")
    start(instance, f"virtual_alias_maps = texthash:{virt}",
          "virtual_alias_domains = virt.example, catch.example")
    smtp_send(instance, "s@example.org", ["team+x@virt.example", "anyone@catch.example", "self@localhost"],
              b"Subject: virtual\r\n\r\nhi\r\n")
    for user in ("ann", "bob", "lead", "dave", "self", "carol"):
        assert len(mail(instance, user)) == 1, user
    wait_queue_empty(instance)
    # One copy for ann, although she is reached twice; the extension went along.
    assert len(instance.new_messages("ann")) == 1
    ann = parse(instance.new_messages("ann")[0].read_bytes())
    assert ann["Delivered-To"] == "ann+x@localhost"
    log = instance.log()
    assert "to=<bob+x@localhost>, orig_to=<team+x@virt.example>" in log, log


def test_virtual_alias_limits_defer_as_postfix(instance):
    """Postfix 3.7 does not accept a message whose expansion runs away: the
    SMTP client gets 451 4.6.0, a local submission stays in the maildrop."""
    start(instance,
          "virtual_alias_maps = inline:{ loop1@localhost=loop2@localhost, loop2@localhost=loop1@localhost,"
          " {wide@localhost=a@localhost, b@localhost, c@localhost} }",
          "virtual_alias_recursion_limit = 5", "virtual_alias_expansion_limit = 2")
    for rcpt, what in (("loop1@localhost", "nesting"), ("wide@localhost", "expansion size")):
        with pytest.raises(smtplib.SMTPDataError) as e:
            smtp_send(instance, "s@example.org", [rcpt], b"Subject: x\r\n\r\nx\r\n")
        assert e.value.smtp_code == 451
        assert b"4.6.0 Alias expansion error" in e.value.smtp_error
        instance.wait_for(lambda: f"unreasonable virtual_alias_maps map {what} for {rcpt}" in instance.log(),
                          what=f"{what} warning")
    instance.sendmail(["-f", "s@localhost", "wide@localhost"], b"Subject: y\n\ny\n")
    instance.wait_for(lambda: "will retry" in instance.log(), what="pickup keeps the file")
    assert any("/maildrop/" in str(p) for p in instance.queue_files())
    assert not instance.new_messages("a")


def test_automatic_bcc(instance):
    start(instance, "always_bcc = audit@localhost",
          "sender_bcc_maps = inline:{ @example.org=archive@localhost }",
          "recipient_bcc_maps = inline:{ ann@localhost=ann-copy@localhost }")
    smtp_send(instance, "boss@example.org", ["ann@localhost"], b"Subject: bcc\r\n\r\nx\r\n")
    for u in ("ann", "audit", "archive", "ann-copy"):
        assert mail(instance, u)[0]["Subject"] == "bcc"


def test_header_checks_reject_over_smtp_and_from_sendmail(instance):
    checks = table(instance, "header_checks",
                   "/^Subject:.*viagra/  REJECT Spam is not wanted\n"
                   "/^Subject:.*later/   REJECT 4.7.0 Try again later\n")
    start(instance, f"header_checks = regexp:{checks}")
    with pytest.raises(smtplib.SMTPDataError) as e:
        smtp_send(instance, "s@example.org", ["u@localhost"], b"Subject: buy viagra\r\n\r\nx\r\n")
    assert (e.value.smtp_code, e.value.smtp_error) == (550, b"5.7.1 Spam is not wanted")
    with pytest.raises(smtplib.SMTPDataError) as e:
        smtp_send(instance, "s@example.org", ["u@localhost"], b"Subject: later\r\n\r\nx\r\n")
    assert (e.value.smtp_code, e.value.smtp_error) == (451, b"4.7.0 Try again later")
    log = instance.log()
    assert ("reject: header Subject: buy viagra from localhost[127.0.0.1]; from=<s@example.org> "
            "to=<u@localhost> proto=ESMTP helo=<client.example>: 5.7.1 Spam is not wanted") in log, log
    # A local submission cannot be refused: it bounces to the sender.
    instance.sendmail(["-f", "snd@localhost", "u@localhost"], b"Subject: cheap viagra\n\nx\n")
    bounce = mail(instance, "snd")[0]
    assert bounce["Subject"] == "Undelivered Mail Returned to Sender"
    assert "Spam is not wanted" in bounce.as_string()
    assert not instance.new_messages("u")
    assert "reject: header Subject: cheap viagra from local; from=<snd@localhost> to=<u@localhost>" in instance.log()


def test_header_and_body_actions(instance):
    """DISCARD, HOLD, REDIRECT, PREPEND, REPLACE, IGNORE, WARN and body_checks."""
    hc = table(instance, "hc",
               "/^Subject: discard/   DISCARD no thanks\n"
               "/^Subject: hold/      HOLD inspect\n"
               "/^Subject: redirect/  REDIRECT boss@localhost\n"
               "/^Subject: prepend/   PREPEND X-Checked: yes\n"
               "/^X-Old:/             REPLACE X-New: replaced\n"
               "/^X-Secret:/          IGNORE\n"
               "/^X-Warn:/            WARN suspicious\n")
    bc = table(instance, "bc", "/^password=/ REPLACE password=[removed]\n/^BADWORD/ REJECT body not allowed\n")
    start(instance, f"header_checks = pcre:{hc}", f"body_checks = regexp:{bc}")
    smtp_send(instance, "s@example.org", ["u@localhost"], b"Subject: discard me\r\n\r\nx\r\n")
    smtp_send(instance, "s@example.org", ["u@localhost"], b"Subject: hold me\r\n\r\nx\r\n")
    smtp_send(instance, "s@example.org", ["u@localhost"], b"Subject: redirect me\r\n\r\nx\r\n")
    smtp_send(instance, "s@example.org", ["u@localhost"],
              b"Subject: prepend\r\nX-Old: 1\r\nX-Secret: 2\r\nX-Warn: 3\r\n\r\nhello\r\npassword=hunter2\r\nbye\r\n")
    with pytest.raises(smtplib.SMTPDataError) as e:
        smtp_send(instance, "s@example.org", ["u@localhost"], b"Subject: b\r\n\r\nok\r\nBADWORD here\r\n")
    assert (e.value.smtp_code, e.value.smtp_error) == (550, b"5.7.1 body not allowed")
    boss = mail(instance, "boss")[0]
    assert boss["Subject"] == "redirect me"
    u = mail(instance, "u")[0]
    assert u["Subject"] == "prepend"
    assert u["X-Checked"] == "yes" and u["X-New"] == "replaced"
    assert u["X-Old"] is None and u["X-Secret"] is None and u["X-Warn"] == "3"
    assert u.get_payload().replace("\r\n", "\n") == "hello\npassword=[removed]\nbye\n"
    # The held message is in hold/, listed by postqueue, released by postsuper -H.
    jobs = instance.postqueue_json()
    held = [j for j in jobs if j["queue_name"] == "hold"]
    assert len(held) == 1, jobs
    log = instance.log()
    for needle in ("discard: header Subject: discard me from localhost[127.0.0.1];",
                   "hold: header Subject: hold me from localhost[127.0.0.1];",
                   "redirect: header Subject: redirect me from localhost[127.0.0.1];",
                   "prepend: header Subject: prepend from", "replace: header X-Old: 1 from",
                   "warning: header X-Warn: 3 from localhost[127.0.0.1];",
                   "reject: body BADWORD here from localhost[127.0.0.1];"):
        assert needle in log, needle
    assert "suspicious" in log
    instance.run("postsuper", "-H", held[0]["queue_id"])
    instance.run("postqueue", "-f")
    assert len(mail(instance, "u", 2)) == 2
    # Only 'prepend' and the released 'hold me' were delivered to u; nothing discarded arrived.
    subjects = sorted(parse(p.read_bytes())["Subject"] for p in instance.new_messages("u"))
    assert subjects == ["hold me", "prepend"]


def test_filter_action_routes_through_content_filter(instance):
    peer = Peer()
    try:
        start(instance, f"header_checks = regexp:{{ {{/^X-Scan: yes/ FILTER smtp:[127.0.0.1]:{peer.port}}} }}")
        smtp_send(instance, "s@example.org", ["u@localhost"], b"X-Scan: yes\r\nSubject: f\r\n\r\nx\r\n")
        instance.wait_for(lambda: peer.messages, what="message at the content filter")
        rcpts, body = peer.messages[0]
        assert rcpts == ["u@localhost"] and b"Subject: f" in body
        assert "filter: header X-Scan: yes from localhost[127.0.0.1];" in instance.log()
        assert not instance.new_messages("u")
    finally:
        peer.close()


def test_mime_and_nested_header_checks(instance):
    start(instance, "mime_header_checks = regexp:{ {/^Content-Disposition:.*\\.exe/ REJECT Executable attachments not allowed} }",
          "nested_header_checks = regexp:{ {/^Subject: inner secret/ REPLACE Subject: [hidden]} }",
          "header_checks =")
    nested = (b"Subject: outer\r\nMIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n"
              b"Subject: inner secret\r\nFrom: x@y\r\n\r\ninner body\r\n")
    smtp_send(instance, "s@example.org", ["u@localhost"], nested)
    m = mail(instance, "u")[0]
    assert b"Subject: [hidden]" in m.as_bytes()
    multi = (b"Subject: att\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n"
             b"--XX\r\nContent-Type: text/plain\r\n\r\nhi\r\n--XX\r\nContent-Type: application/octet-stream\r\n"
             b"Content-Disposition: attachment; filename=\"x.exe\"\r\n\r\nAAAA\r\n--XX--\r\n")
    with pytest.raises(smtplib.SMTPDataError) as e:
        smtp_send(instance, "s@example.org", ["u@localhost"], multi)
    assert e.value.smtp_code == 550 and b"Executable attachments not allowed" in e.value.smtp_error


def test_broken_table_defers_and_never_loses_mail(instance):
    start(instance, f"virtual_alias_maps = texthash:{instance.root}/missing-file")
    with pytest.raises(smtplib.SMTPDataError) as e:
        smtp_send(instance, "s@example.org", ["u@localhost"], b"Subject: x\r\n\r\nx\r\n")
    assert (e.value.smtp_code, e.value.smtp_error) == (451, b"4.3.0 Error: queue file write error")
    instance.sendmail(["-f", "s@localhost", "u@localhost"], b"Subject: kept\n\nx\n")
    instance.wait_for(lambda: "will retry" in instance.log(), what="pickup keeps the file")
    assert "missing-file" in instance.log()
    table(instance, "missing-file", "nobody@localhost u@localhost\n")
    instance.reload()
    # pickup rescans maildrop/ whenever it is triggered: each new submission
    # pokes it, and the kept message is delivered once cleanup can read the table.
    deadline = time.monotonic() + MAX_WAIT
    while not instance.new_messages("u") and time.monotonic() < deadline:
        instance.sendmail(["-f", "s@localhost", "nobody@localhost"], b"Subject: poke\n\nx\n")
        time.sleep(1)
    instance.wait_for(lambda: any(parse(p.read_bytes())["Subject"] == "kept"
                                  for p in instance.new_messages("u")), what="the kept message")


def test_receive_override_options(instance):
    start(instance, "canonical_maps = inline:{ joe@localhost=jdoe@localhost }",
          "header_checks = regexp:{ {/^Subject: drop/ DISCARD} }",
          "always_bcc = audit@localhost",
          "receive_override_options = no_address_mappings, no_header_body_checks")
    instance.sendmail(["-f", "joe", "joe"], b"From: joe\nSubject: drop\n\nx\n")
    m = mail(instance, "joe")[0]
    assert m["From"] == "joe@localhost" and m["Subject"] == "drop"
    assert m["Return-Path"] == "<joe@localhost>"
    assert not instance.new_messages("audit")


def test_relocated_maps_bounce(instance):
    start(instance, "relocated_maps = inline:{ old@localhost=new@other.example }")
    instance.sendmail(["-f", "snd@localhost", "old@localhost"], b"Subject: moved\n\nx\n")
    bounce = mail(instance, "snd")[0]
    assert "User has moved to new@other.example" in bounce.as_string()
    log = instance.log()
    assert "to=<old@localhost>" in log and "dsn=5.1.6" in log and "status=bounced (User has moved to new@other.example)" in log


def test_bangpath_percent_hack_and_append_dot_mydomain(instance):
    # With append_dot_mydomain, "localhost" becomes "localhost.example" too
    # (Postfix warns about exactly that): it must stay a local domain.
    start(instance, "mydomain = example", "append_dot_mydomain = yes",
          "mydestination = localhost.example, box.example")
    instance.sendmail(["-f", "s", "localhost!bang", "pct%localhost", "dot@box"], b"Subject: forms\n\nx\n")
    for user, addr in (("bang", "bang@localhost.example"), ("pct", "pct@localhost.example"),
                       ("dot", "dot@box.example")):
        assert mail(instance, user)[0]["Delivered-To"] == addr
