"""The pipeline of issue 2, end to end through the real binary:
sendmail → postdrop → maildrop → pickup → cleanup → incoming → qmgr → local,
bounces, deferral and retry, expiry, mbox, corrupt input, logs."""

from __future__ import annotations

import email
import email.policy
import mailbox
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from postern import Proc

MSG = b"Subject: %s\n\nhello %s\n"


def parse(raw: bytes) -> email.message.Message:
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def messages(inst, user: str) -> list[email.message.Message]:
    return [parse(p.read_bytes()) for p in inst.new_messages(user)]


def dsn_fields(msg: email.message.Message) -> list[dict[str, str]]:
    """The per-message and per-recipient field groups of a DSN's delivery-status part."""
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            groups = []
            for block in part.get_payload():
                groups.append({k.lower(): v for k, v in block.items()})
            return groups
    raise AssertionError("no message/delivery-status part")


def postconf(inst, *settings: str) -> None:
    inst.run("postconf", "-e", *settings)


def wait_queue_empty(inst, timeout: float = 30) -> None:
    inst.wait_for(lambda: not [p for p in inst.queue_files() if "/corrupt/" not in str(p)],
                  timeout=timeout, what="queue empty")


def test_bounce_reaches_sender(instance):
    """A mail loop (Delivered-To already naming the recipient) bounces with 5.4.6;
    the sender receives an RFC 3464 report."""
    instance.start()
    looping = b"Delivered-To: loop@localhost\nSubject: loop\n\nbody\n"
    instance.sendmail(["-f", "sender@localhost", "loop@localhost"], looping)
    instance.wait_for_mail("sender", 1)
    ndr = messages(instance, "sender")[0]
    assert ndr["Subject"] == "Undelivered Mail Returned to Sender"
    assert ndr.get("Return-Path", "").strip() == "<>"
    groups = dsn_fields(ndr)
    rcpt = groups[1]
    assert rcpt["action"] == "failed"
    assert rcpt["status"] == "5.4.6"
    assert "loop@localhost" in rcpt["final-recipient"]
    assert not instance.new_messages("loop")
    wait_queue_empty(instance)
    log = instance.log()
    assert "status=bounced (mail forwarding loop for loop@localhost)" in log, log
    assert "sender non-delivery notification" in log


def test_null_sender_is_never_bounced_back(instance):
    """A bounce that bounces goes to the postmaster (notify_classes 2bounce), never back to <>."""
    postconf(instance, "notify_classes = 2bounce")
    instance.start()
    instance.sendmail(["-f", "<>", "loop@localhost"], b"Delivered-To: loop@localhost\nSubject: x\n\nb\n")
    instance.wait_for_mail("postmaster", 1)
    notice = messages(instance, "postmaster")[0]
    assert notice["Subject"] == "Undelivered Mail Returned to Sender"
    assert "double-bounce@" in notice["Return-Path"]
    wait_queue_empty(instance)
    assert "postmaster non-delivery notification" in instance.log()


def test_mbox_delivery(instance):
    """mail_spool_directory without a trailing slash: one mbox file per user."""
    postconf(instance, f"mail_spool_directory = {instance.root}/mail")
    instance.start()
    for i in range(3):
        body = b"Subject: m%d\n\nFrom the start of a line\nline two\n" % i
        instance.sendmail(["-f", "a@localhost", "mboxuser@localhost"], body)
    path = instance.root / "mail" / "mboxuser"
    instance.wait_for(lambda: path.exists() and path.read_bytes().count(b"\nSubject: m") == 3,
                      what="3 messages in the mbox")
    box = mailbox.mbox(str(path), create=False)
    msgs = list(box)
    # Deliveries run concurrently: the order in the mbox is not the order of submission.
    assert sorted(m["Subject"] for m in msgs) == ["m0", "m1", "m2"]
    for m in msgs:
        assert m.get_from().startswith("a@localhost ")
        assert m["Delivered-To"] == "mboxuser@localhost"
        assert b">From the start of a line" in m.get_payload().encode()
    if shutil.which("doveadm"):
        out = subprocess.run(
            ["doveadm", "-o", f"mail_location=mbox:{path.parent}:INBOX={path}", "-o", "mail_uid=0",
             "mailbox", "status", "-u", "x", "messages", "INBOX"],
            capture_output=True, text=True, timeout=30)
        if out.returncode == 0:
            assert "messages=3" in out.stdout, out.stdout + out.stderr


def _break_maildir(inst, user: str) -> Path:
    """Makes delivery to `user` fail temporarily: its Maildir path is a file."""
    p = inst.maildir_path(user)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("not a directory\n")
    if inst.user is not None:
        os.chown(p, inst.user.pw_uid, inst.user.pw_gid)
    return p


def test_defer_then_flush(instance):
    """A temporary failure defers the message; mailq shows why; postqueue -f
    delivers it once the problem is fixed."""
    postconf(instance, "minimal_backoff_time = 300s", "maximal_backoff_time = 4000s")
    blocker = _break_maildir(instance, "carol")
    instance.start()
    instance.sendmail(["-f", "a@localhost", "carol@localhost"], MSG % (b"deferred", b"carol"))
    instance.wait_for(lambda: any("/deferred/" in str(p) for p in instance.queue_files()),
                      what="message in deferred/")
    jobs = instance.postqueue_json()
    assert len(jobs) == 1 and jobs[0]["queue_name"] == "deferred", jobs
    assert jobs[0]["recipients"][0]["address"] == "carol@localhost"
    assert jobs[0]["recipients"][0].get("delay_reason"), jobs
    listing = instance.postqueue_p()
    assert "carol@localhost" in listing and "(" in listing, listing
    assert "status=deferred" in instance.log()
    blocker.unlink()
    instance.run("postqueue", "-f")
    instance.wait_for_mail("carol", 1)
    wait_queue_empty(instance)
    assert (instance.root / "queue" / "defer").is_dir()
    assert not list((instance.root / "queue" / "defer").iterdir()), "defer log left behind"


def test_expired_message_is_returned(instance):
    """After maximal_queue_lifetime a deferred message is bounced to its sender."""
    postconf(instance, "maximal_queue_lifetime = 1s", "minimal_backoff_time = 1s",
             "maximal_backoff_time = 1s", "queue_run_delay = 1s")
    _break_maildir(instance, "dave")
    instance.start()
    instance.sendmail(["-f", "eve@localhost", "dave@localhost"], MSG % (b"expiring", b"dave"))
    instance.wait_for_mail("eve", 1, timeout=30)
    ndr = messages(instance, "eve")[0]
    rcpt = dsn_fields(ndr)[1]
    assert rcpt["action"] == "failed"
    assert rcpt["status"].startswith("4.")
    wait_queue_empty(instance)
    assert "status=expired, returned to sender" in instance.log()


def test_submission_while_stopped(instance):
    """sendmail works while master is down; the mail goes out at start."""
    instance.sendmail(["-f", "a@localhost", "later@localhost"], MSG % (b"queued", b"later"))
    assert [p for p in instance.queue_files() if "/maildrop/" in str(p)]
    instance.start()
    instance.wait_for_mail("later", 1)


def test_daemons_are_separate_processes(instance):
    instance.start()
    for i in range(5):
        instance.sendmail(["-f", "a@localhost", "ps@localhost"], MSG % (b"ps", str(i).encode()))
    instance.wait_for_mail("ps", 5)
    time.sleep(0.2)
    names = set()
    for p in instance.processes():
        try:
            names.add(Path(f"/proc/{p.pid}/cmdline").read_bytes().split(b"\0")[0].decode())
        except OSError:
            pass
    assert {"master", "pickup", "cleanup", "qmgr", "local"} <= names, names
    instance.stop()
    assert not instance.leftover_processes()


def test_second_master_refused(instance):
    instance.start()
    r = instance.run("start", check=False)
    assert r.returncode != 0
    assert b"already running" in r.stderr


def test_corrupt_input_is_quarantined(instance):
    """Garbage in maildrop and a truncated queue file in incoming go to corrupt/;
    their neighbours are delivered."""
    q = instance.root / "queue"
    junk = q / "maildrop" / "GARBAGE1"
    junk.write_bytes(b"\x00\x01 this is not a queue file\n" * 10)
    weird = q / "maildrop" / "weird name!"
    weird.write_bytes(b"junk")
    good = instance.run("sendmail", "-f", "a@localhost", "ok@localhost", input=MSG % (b"good", b"ok"))
    assert good.returncode == 0
    drop = [p for p in (q / "maildrop").iterdir() if p.name not in ("GARBAGE1", "weird name!")][0]
    truncated = q / "incoming" / "DEADBEEF1"
    truncated.write_bytes(drop.read_bytes()[:40])
    for p in (junk, weird, truncated):
        p.chmod(0o744 if "maildrop" in str(p) else 0o700)
        if instance.user is not None:
            os.chown(p, instance.user.pw_uid, instance.user.pw_gid)
    instance.start()
    instance.wait_for_mail("ok", 1)
    instance.wait_for(lambda: len(list((q / "corrupt").iterdir())) == 3, what="3 files in corrupt/")
    assert instance.master_alive()
    log = instance.log()
    assert "corrupt" in log


def test_root_instance_delivers_as_recipient(root_instance, unprivileged_user):
    """Run by root: daemons drop to mail_owner; local delivers as the account;
    an unknown account bounces with 5.1.1."""
    inst = root_instance
    inst.start()
    user = unprivileged_user.pw_name
    inst.sendmail(["-f", "root@localhost", f"{user}@localhost"], MSG % (b"as user", b"u"))
    files = inst.wait_for_mail(user, 1)
    st = files[0].stat()
    assert st.st_uid == unprivileged_user.pw_uid
    inst.sendmail(["-f", "root@localhost", "no-such-account-x@localhost"], MSG % (b"nobody", b"x"))
    inst.wait_for_mail("root", 1)
    rcpt = dsn_fields(messages(inst, "root")[0])[1]
    assert rcpt["status"] == "5.1.1"
    owners = {}
    for p in inst.processes():
        try:
            name = Path(f"/proc/{p.pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            uid = os.stat(f"/proc/{p.pid}").st_uid
        except OSError:
            continue
        owners.setdefault(name, set()).add(uid)
    import pwd
    postfix_uid = pwd.getpwnam("postfix").pw_uid
    for daemon in ("pickup", "qmgr", "cleanup"):
        if daemon in owners:
            assert owners[daemon] == {postfix_uid}, owners
    assert owners.get("master") == {0}, owners


def test_reload_keeps_mail_flowing(instance):
    instance.start()
    instance.sendmail(["-f", "a@localhost", "r1@localhost"], MSG % (b"before", b"reload"))
    instance.wait_for_mail("r1", 1)
    instance.reload()
    time.sleep(0.5)
    instance.sendmail(["-f", "a@localhost", "r2@localhost"], MSG % (b"after", b"reload"))
    instance.wait_for_mail("r2", 1)
    assert "reload -- version" in instance.log()


def test_message_size_limit(instance):
    """A message over message_size_limit is not delivered; the sender learns why."""
    postconf(instance, "message_size_limit = 2000")
    instance.start()
    big = b"Subject: big\n\n" + b"x" * 70 + b"\n"
    r = instance.sendmail(["-f", "big@localhost", "target@localhost"], big * 60, check=False)
    if r.returncode == 0:
        instance.wait_for_mail("big", 1)
        rcpt = dsn_fields(messages(instance, "big")[0])[1]
        assert rcpt["status"] == "5.3.4"
    else:
        assert r.returncode in (65, 73, 75), r
    wait_queue_empty(instance)
    assert not instance.new_messages("target")


def test_pflogsumm_counts_every_message(instance):
    if not shutil.which("pflogsumm"):
        pytest.skip("pflogsumm not installed")
    instance.start()
    for i in range(4):
        instance.sendmail(["-f", "stats@localhost", f"u{i}@localhost"], MSG % (b"s", str(i).encode()))
    for i in range(4):
        instance.wait_for_mail(f"u{i}", 1)
    wait_queue_empty(instance)
    out = subprocess.run(["pflogsumm", "--smtpd-stats", str(instance.root / "log" / "maillog")],
                         capture_output=True, text=True, timeout=60).stdout
    received = [l for l in out.splitlines() if l.strip().endswith("received")]
    delivered = [l for l in out.splitlines() if l.strip().endswith("delivered")]
    assert received and received[0].split()[0] == "4", out
    assert delivered and delivered[0].split()[0] == "4", out


def test_postsuper_hold_release_delete(instance):
    instance.sendmail(["-f", "a@localhost", "held@localhost"], MSG % (b"hold", b"me"))
    instance.start()
    # Put the next message on hold before qmgr sees it: stop, submit, hold via maildrop requeue.
    instance.wait_for_mail("held", 1)
    _break_maildir(instance, "h2")
    instance.sendmail(["-f", "a@localhost", "h2@localhost"], MSG % (b"hold", b"h2"))
    instance.wait_for(lambda: any("/deferred/" in str(p) for p in instance.queue_files()), what="deferred")
    qid = instance.postqueue_json()[0]["queue_id"]
    instance.run("postsuper", "-h", qid)
    assert instance.postqueue_json()[0]["queue_name"] == "hold"
    cat = instance.run("postcat", "-q", qid).stdout.decode()
    assert "h2@localhost" in cat
    instance.run("postsuper", "-H", qid)
    assert instance.postqueue_json()[0]["queue_name"] == "deferred"
    instance.run("postsuper", "-d", "ALL")
    assert instance.postqueue_json() == []
