"""The virtual, pipe, discard, error and retry delivery agents (issue 5, §4-6),
through real instances: mail goes in with sendmail or SMTP, qmgr routes it
(virtual_mailbox_domains, transport_maps), the agent's results show in the
maillog, in the mailboxes (read back with Python's mailbox module and
Dovecot's doveadm) and in the delivery status notifications."""

from __future__ import annotations

import email
import email.policy
import json
import mailbox
import os
import pwd
import shutil
import smtplib
import subprocess
import tempfile
from pathlib import Path

import pytest

MSG = b"From: snd@localhost\nSubject: %s\n\nFrom the start of a line\n.dot line\nbody\n"


def postconf(inst, *settings: str) -> None:
    inst.run("postconf", "-e", *settings)


def owner(inst) -> pwd.struct_passwd:
    """The account the instance runs as."""
    return inst.user or pwd.getpwuid(os.geteuid())


def give(inst, path: Path) -> Path:
    """Makes `path` belong to the instance's account."""
    if inst.user is not None and os.geteuid() == 0:
        os.chown(path, inst.user.pw_uid, inst.user.pw_gid)
    return path


def write_table(inst, name: str, text: str) -> str:
    p = inst.root / name
    p.write_text(text)
    give(inst, p)
    return f"texthash:{p}"


def add_service(inst, text: str) -> None:
    with open(inst.root / "master.cf", "a") as f:
        f.write(text)


def lines(inst, needle: str) -> list[str]:
    return [l for l in inst.log().splitlines() if needle in l]


def wait_log(inst, needle: str, count: int = 1) -> list[str]:
    return inst.wait_for(lambda: len(found := lines(inst, needle)) >= count and found,
                         what=f"{count} log line(s) with {needle!r}")


def dsn_groups(raw: bytes) -> list[dict[str, str]]:
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            return [{k.lower(): v for k, v in block.items()} for block in part.get_payload()]
    raise AssertionError("no message/delivery-status part")


def doveadm_subjects(src: Path) -> list[str] | None:
    """Subjects of the Maildir or mbox `src`, read by Dovecot's doveadm from a
    copy (doveadm moves Maildir files from new/ to cur/ and writes index
    files), as the mailbox's owner. None when doveadm is not installed."""
    if shutil.which("doveadm") is None:
        return None
    st = src.stat()
    with tempfile.TemporaryDirectory(prefix="postern-dove-") as d:
        home = Path(d)
        copy = home / src.name
        if src.is_dir():
            shutil.copytree(src, copy)
            location = f"maildir:{copy}"
        else:
            shutil.copy2(src, copy)
            location = f"mbox:{home}:INBOX={copy}"
        if os.geteuid() == 0:
            for p in [home, *home.rglob("*")]:
                os.chown(p, st.st_uid, st.st_gid)
        env = {"USER": pwd.getpwuid(st.st_uid).pw_name, "HOME": d, "PATH": os.environ.get("PATH", "")}
        r = subprocess.run(
            ["doveadm", "-o", f"mail_location={location}", "-o", f"mail_uid={st.st_uid}",
             "-o", f"mail_gid={st.st_gid}", "-o", "first_valid_uid=1", "-o", "first_valid_gid=1",
             "fetch", "hdr.subject", "mailbox", "INBOX", "all"],
            capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return [l.split(":", 1)[1].strip() for l in r.stdout.splitlines() if l.lower().startswith("hdr.subject:")]


# --------------------------------------------------------------------------- virtual

def setup_virtual(inst, uid: int, gid: int) -> Path:
    base = inst.root / "vmail"
    (base / "vexample.test").mkdir(parents=True)
    give(inst, base)
    give(inst, base / "vexample.test")
    maps = write_table(inst, "vmailbox",
                       "joe@vexample.test vexample.test/joe/\n"
                       "ann@vexample.test vexample.test/ann\n"
                       "sym@vexample.test vexample.test/sym\n")
    postconf(inst, "virtual_mailbox_domains = vexample.test", f"virtual_mailbox_base = {base}",
             f"virtual_mailbox_maps = {maps}", f"virtual_uid_maps = static:{uid}",
             f"virtual_gid_maps = static:{gid}", "virtual_minimum_uid = 1", "recipient_delimiter = +")
    return base


def check_virtual_mail(inst, base: Path) -> None:
    for i, rcpt in enumerate(["joe+ext@vexample.test", "Ann@VEXAMPLE.test", "joe@vexample.test"]):
        inst.sendmail(["-f", "snd@localhost", rcpt], MSG % (b"v%d" % i))
    joe, ann = base / "vexample.test" / "joe", base / "vexample.test" / "ann"
    inst.wait_for(lambda: len(list((joe / "new").iterdir())) == 2, what="2 messages in joe's Maildir")
    inst.wait_for(lambda: ann.exists() and ann.read_bytes().count(b"\nSubject: v") == 1, what="ann's mbox")
    box = mailbox.Maildir(str(joe), factory=None, create=False)
    msgs = sorted(box, key=lambda m: m["Subject"])
    assert [m["Subject"] for m in msgs] == ["v0", "v2"]
    assert msgs[0]["Delivered-To"] == "joe+ext@vexample.test"
    assert msgs[0]["Return-Path"] == "<snd@localhost>"
    assert msgs[0]["X-Original-To"] == "joe+ext@vexample.test"
    mb = list(mailbox.mbox(str(ann), create=False))
    assert [m["Subject"] for m in mb] == ["v1"]
    assert mb[0].get_from().startswith("snd@localhost ")
    assert b">From the start" in mb[0].get_payload().encode()
    for path, want in ((joe, ["v0", "v2"]), (ann, ["v1"])):
        got = doveadm_subjects(path)
        if got is not None:
            assert sorted(got) == want, (path, got)
    sent = wait_log(inst, "relay=virtual", 3)
    assert sum("status=sent (delivered to maildir)" in l for l in sent) == 2, sent
    assert sum("status=sent (delivered to mailbox)" in l for l in sent) == 1, sent


def test_virtual_maildir_mbox_and_unknown_user(instance):
    me = owner(instance)
    base = setup_virtual(instance, me.pw_uid, me.pw_gid)
    instance.start()
    check_virtual_mail(instance, base)
    instance.sendmail(["-f", "snd@localhost", "zed@vexample.test"], MSG % b"unknown")
    ndr = instance.wait_for_mail("snd", 1)[0].read_bytes()
    rcpt = dsn_groups(ndr)[1]
    assert rcpt["status"] == "5.1.1"
    assert "zed@vexample.test" in rcpt["final-recipient"]
    assert b'unknown user: "zed@vexample.test"' in ndr
    assert wait_log(instance, 'status=bounced (unknown user: "zed@vexample.test")')


def test_virtual_other_uid_defers_in_a_non_root_instance(instance):
    me = owner(instance)
    setup_virtual(instance, me.pw_uid + 1, me.pw_gid)
    instance.start()
    instance.sendmail(["-f", "snd@localhost", "joe@vexample.test"], MSG % b"x")
    line = wait_log(instance, "status=deferred")[0]
    assert "relay=virtual" in line and "dsn=4.3.5" in line, line
    assert "this instance does not run as root" in line, line
    assert any("/deferred/" in str(p) or "/active/" in str(p) for p in instance.queue_files())


def test_virtual_as_root_uses_the_mapped_ids(root_instance, unprivileged_user):
    """A root instance writes with the mapped uid/gid; a symlink planted in the
    mailbox directory is never written through; a uid below virtual_minimum_uid
    defers."""
    inst, u = root_instance, unprivileged_user
    base = setup_virtual(inst, u.pw_uid, u.pw_gid)
    for d in (base, base / "vexample.test"):
        os.chown(d, u.pw_uid, u.pw_gid)
    victim = inst.root / "victim"
    victim.write_text("untouched\n")
    os.symlink(victim, base / "vexample.test" / "sym")
    inst.start()
    check_virtual_mail(inst, base)
    joe = base / "vexample.test" / "joe"
    for p in [joe, *(joe / "new").iterdir(), base / "vexample.test" / "ann"]:
        st = p.stat()
        assert (st.st_uid, st.st_gid) == (u.pw_uid, u.pw_gid), p
    inst.sendmail(["-f", "snd@localhost", "sym@vexample.test"], MSG % b"sym")
    line = wait_log(inst, "to=<sym@vexample.test>")[0]
    assert "status=deferred (delivery failed to mailbox" in line, line
    assert victim.read_text() == "untouched\n"
    postconf(inst, f"virtual_minimum_uid = {u.pw_uid + 1}")
    inst.reload()
    inst.sendmail(["-f", "snd@localhost", "joe@vexample.test"], MSG % b"low uid")
    line = wait_log(inst, "dsn=4.3.5")[0]
    assert "status=deferred (mail system configuration error)" in line, line
    assert f"bad uid {u.pw_uid} in virtual_uid_maps" in inst.log()


# --------------------------------------------------------------------------- pipe

PIPE_SCRIPT = r"""#!/usr/bin/python3
import json, os, sys, time
args = sys.argv[1:]
data = sys.stdin.buffer.read()
out = os.environ.get("OUT", "%(out)s")
rcpt = [a for a in args if a.startswith("recipient=")]
name = rcpt[0].split("=", 1)[1] if rcpt else "all"
with open(os.path.join(out, name.replace("/", "_") + ".json"), "w") as f:
    json.dump({"argv": args, "stdin": data.decode("latin-1"), "uid": os.getuid(),
               "cwd": os.getcwd(), "env": dict(os.environ)}, f)
local = name.split("@")[0].lower()
if local == "tempfail":
    print("mailbox busy"); sys.exit(75)
if local == "nouser":
    sys.exit(67)
if local == "other":
    sys.stderr.write("it broke\n"); sys.exit(1)
if local == "dsnout":
    print("4.2.2 over quota"); sys.exit(1)
if local == "hang":
    time.sleep(60)
print("thanks")
"""

MACROS = ["sender", "recipient", "original_recipient", "nexthop", "user", "extension", "domain",
          "mailbox", "size", "queue_id", "client_address", "client_hostname", "client_helo",
          "client_protocol", "client_port", "sasl_method", "sasl_username", "sasl_sender"]


def setup_pipe(inst, run_as: str) -> Path:
    base = inst.base or inst.root
    out = base / "pipe-out"
    out.mkdir()
    pw = pwd.getpwnam(run_as)
    if os.geteuid() == 0:
        os.chown(out, pw.pw_uid, pw.pw_gid)
    script = base / "pipe.py"
    script.write_text(PIPE_SCRIPT % {"out": out})
    script.chmod(0o755)
    argv = " ".join("{%s=${%s}}" % (m, m) for m in MACROS)
    add_service(inst,
                f"mypipe unix - n n - - pipe\n  flags=DORFB.> eol=\\r\\n user={run_as} size=100000\n"
                f"  argv={script} {argv}\n"
                f"plain unix - n n - - pipe\n  flags=hu user={run_as} argv={script} {{recipient=$recipient}} "
                f"{{nexthop=$nexthop}} {{domain=$domain}}\n"
                f"multi unix - n n - - pipe\n  user={run_as} argv={script} -- ${{recipient}}\n")
    tm = write_table(inst, "transport",
                     "pipe.test mypipe:Pipe-Hop.test\nplain.test plain:Plain-Hop.TEST\n"
                     "multi.test multi:\n")
    postconf(inst, f"transport_maps = {tm}", "recipient_delimiter = +",
             "mypipe_destination_recipient_limit = 1", "plain_destination_recipient_limit = 1",
             "mypipe_time_limit = 2s", "plain_time_limit = 2s")
    return out


def result(out: Path, rcpt: str) -> dict:
    return json.loads((out / f"{rcpt}.json").read_text())


def test_pipe_macros_and_flags(instance):
    me = owner(instance)
    out = setup_pipe(instance, me.pw_name)
    instance.start()
    with smtplib.SMTP("127.0.0.1", instance.port, timeout=30) as s:
        s.ehlo("helo.client.test")
        s.sendmail("snd@localhost", ["joe+box@pipe.test"], MSG % b"pipe")
    got = instance.wait_for(lambda: result(out, "joe+box@pipe.test"), what="pipe output")
    args = dict(a.split("=", 1) for a in got["argv"])
    assert args["sender"] == "snd@localhost"
    assert args["recipient"] == args["original_recipient"] == "joe+box@pipe.test"
    assert (args["user"], args["extension"], args["mailbox"], args["domain"]) == \
        ("joe", "box", "joe+box", "pipe.test")
    assert args["nexthop"] == "Pipe-Hop.test"
    assert args["client_address"] == "127.0.0.1"
    assert args["client_helo"] == "helo.client.test"
    assert args["client_protocol"] in ("ESMTP", "SMTP")
    assert args["sasl_method"] == args["sasl_username"] == args["sasl_sender"] == ""
    assert int(args["size"]) > 0 and args["queue_id"]
    assert got["uid"] == me.pw_uid
    assert got["env"]["PATH"] == "/usr/bin:/bin" and "POSTERN_DAEMON" not in got["env"]
    stdin = got["stdin"]
    assert stdin.startswith("From snd@localhost  "), stdin
    head = stdin.split("\r\n")
    assert head[1:4] == ["Return-Path: <snd@localhost>", "X-Original-To: joe+box@pipe.test",
                         "Delivered-To: joe+box@pipe.test"], head
    assert "\r\n>From the start of a line\r\n..dot line\r\nbody\r\n\r\n" in stdin
    assert "\n" not in stdin.replace("\r\n", "")
    line = wait_log(instance, "relay=mypipe")[0]
    assert "dsn=2.0.0, status=sent (delivered via mypipe service (thanks))" in line, line
    # h and u fold the recipient and the next hop; no flags: content unchanged.
    instance.sendmail(["-f", "snd@localhost", "Mixed.Case@PLAIN.test"], MSG % b"plain")
    got = instance.wait_for(lambda: result(out, "mixed.case@plain.test"), what="plain output")
    assert got["argv"] == ["recipient=mixed.case@plain.test", "nexthop=plain-hop.test", "domain=plain.test"]
    assert got["stdin"].endswith("From the start of a line\n.dot line\nbody\n")
    assert got["cwd"] == str(instance.root / "queue")


def test_pipe_one_invocation_for_many_recipients(instance):
    out = setup_pipe(instance, owner(instance).pw_name)
    instance.start()
    instance.sendmail(["-f", "snd@localhost", "a@multi.test", "b@multi.test"], MSG % b"multi")
    got = instance.wait_for(lambda: result(out, "all"), what="one run for both")
    assert got["argv"] == ["--", "a@multi.test", "b@multi.test"]
    wait_log(instance, "relay=multi", 2)


def test_pipe_exit_codes_and_time_limit(instance):
    setup_pipe(instance, owner(instance).pw_name)
    instance.start()
    for who in ("tempfail", "nouser", "other", "dsnout", "hang"):
        instance.sendmail(["-f", "snd@localhost", f"{who}@pipe.test"], MSG % who.encode())
    expect = {
        "tempfail": 'dsn=4.3.0, status=deferred (temporary failure. Command output: mailbox busy )',
        "nouser": "dsn=5.1.1, status=bounced (user unknown)",
        "other": 'dsn=5.3.0, status=bounced (Command died with status 1: "',
        "dsnout": "dsn=4.2.2, status=deferred (over quota )",
        "hang": 'dsn=5.3.0, status=bounced (Command time limit exceeded: "',
    }
    for who, text in expect.items():
        line = wait_log(instance, f"to=<{who}@pipe.test>")[0]
        assert text in line and "relay=mypipe" in line, line
    assert "Command output: it broke )" in lines(instance, "to=<other@pipe.test>")[0]
    # The bounces reach the sender with the statuses.
    ndrs = instance.wait_for_mail("snd", 3)
    statuses = sorted(dsn_groups(p.read_bytes())[1]["status"] for p in ndrs)
    assert statuses == ["5.1.1", "5.3.0", "5.3.0"], statuses
    # The hung command is gone (its process group was killed).
    script = str((instance.base or instance.root) / "pipe.py").encode()
    running = []
    for d in Path("/proc").iterdir():
        try:
            # The command itself (python3 SCRIPT …), not the pipe daemons that name it.
            if d.name.isdigit() and script in (d / "cmdline").read_bytes().split(b"\0")[:2]:
                running.append(d.name)
        except OSError:
            pass
    assert not running, running


def test_pipe_size_limit_and_loop(instance):
    setup_pipe(instance, owner(instance).pw_name)
    instance.start()
    instance.sendmail(["-f", "snd@localhost", "big@pipe.test"], b"Subject: big\n\n" + b"x" * 120_000 + b"\n")
    line = wait_log(instance, "to=<big@pipe.test>")[0]
    assert "dsn=5.2.3, status=bounced (message too large)" in line, line
    instance.sendmail(["-f", "snd@localhost", "loop@pipe.test"],
                      b"Delivered-To: LOOP@pipe.test\nSubject: loop\n\nx\n")
    line = wait_log(instance, "to=<loop@pipe.test>")[0]
    assert "dsn=5.4.6, status=bounced (mail forwarding loop for loop@pipe.test)" in line, line


def test_pipe_as_root_runs_as_user(root_instance, unprivileged_user):
    inst, u = root_instance, unprivileged_user
    out = setup_pipe(inst, u.pw_name)
    inst.start()
    inst.sendmail(["-f", "snd@localhost", "joe@pipe.test"], MSG % b"root pipe")
    got = inst.wait_for(lambda: result(out, "joe@pipe.test"), what="pipe output")
    assert got["uid"] == u.pw_uid
    wait_log(inst, "status=sent (delivered via mypipe service")


# --------------------------------------------------------------------------- discard, error, retry

def test_discard_error_retry_through_transport_maps(instance):
    tm = write_table(instance, "transport",
                     "discard.test discard:silently dropped\n"
                     "plaindiscard.test discard:\n"
                     "err.test error:5.1.1 Mailbox unavailable\n"
                     "err2.test error:\n"
                     "retry.test retry:4.4.1 try again later\n")
    postconf(instance, f"transport_maps = {tm}")
    instance.start()
    for rcpt in ("a@discard.test", "b@plaindiscard.test", "c@err.test", "d@err2.test", "e@retry.test"):
        instance.sendmail(["-f", "snd@localhost", rcpt], MSG % rcpt.encode())
    expect = {
        "a@discard.test": "relay=none, delay=",
        "b@plaindiscard.test": "dsn=2.0.0, status=sent (plaindiscard.test)",
        "c@err.test": "dsn=5.1.1, status=bounced (Mailbox unavailable)",
        "d@err2.test": "dsn=5.0.0, status=bounced (err2.test)",
        "e@retry.test": "dsn=4.4.1, status=deferred (try again later)",
    }
    for rcpt, text in expect.items():
        line = wait_log(instance, f"to=<{rcpt}>")[0]
        assert text in line and "relay=none" in line, line
    assert "dsn=2.0.0, status=sent (silently dropped)" in lines(instance, "to=<a@discard.test>")[0]
    assert "postfix/discard[" in lines(instance, "to=<a@discard.test>")[0]
    assert "postfix/error[" in lines(instance, "to=<e@retry.test>")[0]
    ndrs = instance.wait_for_mail("snd", 2)
    by_rcpt = {}
    for p in ndrs:
        g = dsn_groups(p.read_bytes())[1]
        by_rcpt[g["final-recipient"].split(";")[-1].strip()] = (g["status"], p.read_text(errors="replace"))
    assert by_rcpt["c@err.test"][0] == "5.1.1"
    assert "Mailbox unavailable" in by_rcpt["c@err.test"][1]
    assert by_rcpt["d@err2.test"][0] == "5.0.0"
    # The retried message stays queued, with the reason for mailq.
    assert "try again later" in instance.postqueue_p()
