"""test_submission_root.py -- Postfix's submission model for ordinary users of a root instance.

A root instance (`postern init` and `start` as root; daemons drop to `postfix`) and three
accounts made here with useradd (removed with userdel at the end). The users submit with
`sendmail` (an interactive-style call and a cron-style one: no terminal, no session, a minimal
environment with MAIL_CONFIG), list the queue with `mailq`/`postqueue -p` through showq, and
flush it; pickup logs each submission with the submitter's uid. What users must not be able to
do fails: writing maildrop, reading queue directories and files, connecting to any public/ or
private/ socket (EACCES); a user outside authorized_submit_users/mailq/flush users gets
Postfix's refusal (exit 77); a foreign configuration directory is refused by the set-gid
commands unless alternate_config_directories lists it; a forged maildrop file (origin_uid=0,
filter=) goes to corrupt/ with a warning naming the uid and is never delivered.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from postern import COMMAND_TIMEOUT, free_port

MSG = b"From: %s\nSubject: %s\n\nbody\n"
PY = "/usr/bin/python3"


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def users():
    """Three accounts with home directories under a temp dir; removed at the end."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    base = Path(tempfile.mkdtemp(prefix="postern-sub-homes-"))
    base.chmod(0o755)
    names = [f"postern-u{i}-{os.getpid()}" for i in (1, 2, 3)]
    made = []
    try:
        for n in names:
            r = subprocess.run(["useradd", "--create-home", "--home-dir", str(base / n),
                                "--shell", "/bin/sh", "--user-group", n],
                               capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                pytest.skip(f"useradd {n}: {r.stderr.strip()}")
            made.append(n)
        yield [pwd.getpwnam(n) for n in names]
    finally:
        for n in made:
            subprocess.run(["userdel", n], capture_output=True, timeout=30)
        shutil.rmtree(base, ignore_errors=True)


def as_user(u: pwd.struct_passwd, argv: list[str], input: bytes = b"", env: dict | None = None,
            ) -> subprocess.CompletedProcess:
    """Runs argv as `u` in a new session (no controlling terminal), bounded."""
    env = env if env is not None else {
        "PATH": "/usr/bin:/bin", "HOME": u.pw_dir, "USER": u.pw_name, "LOGNAME": u.pw_name,
        "LANG": "C", "TZ": "UTC"}
    cmd = ["setpriv", f"--reuid={u.pw_uid}", f"--regid={u.pw_gid}", "--init-groups", "--", *argv]
    return subprocess.run(cmd, input=input, capture_output=True, env=env, cwd=u.pw_dir,
                          timeout=COMMAND_TIMEOUT, start_new_session=True)


def postconf(inst, *settings: str) -> None:
    inst.run("postconf", "-e", *settings)


def prepare(inst, users) -> None:
    """Mailboxes the administrator created (the spool is root's, mode 0755)."""
    for u in users:
        d = inst.root / "mail" / u.pw_name
        d.mkdir()
        os.chown(d, u.pw_uid, u.pw_gid)
        d.chmod(0o700)


def subjects(inst, user: str) -> list[str]:
    out = []
    for p in inst.new_messages(user):
        for line in p.read_bytes().split(b"\n"):
            if line.startswith(b"Subject: "):
                out.append(line[9:].decode())
    return out


def qfile(sender: str, rcpt: str, attrs: list[tuple[str, str]], body: bytes) -> bytes:
    """A maildrop file in postern-qfile's format (crates/postern-qfile)."""
    def rec(kind: bytes, payload: bytes) -> bytes:
        n, ln = len(payload), bytearray()
        while True:
            b, n = n & 0x7F, n >> 7
            ln.append(b | (0x80 if n else 0))
            if not n:
                break
        return kind + bytes(ln) + payload
    out = b"POSTERNQ\x01" + rec(b"T", b"%d.000000" % int(time.time())) + rec(b"S", sender.encode())
    for n, v in attrs:
        out += rec(b"A", f"{n}={v}".encode())
    out += rec(b"R", b"0\0\0" + rcpt.encode() + b"\0" + rcpt.encode())
    return out + rec(b"M", body) + rec(b"E", b"")


# --------------------------------------------------------------------------- tests

def test_queue_tree_owners_and_modes(root_instance):
    q = root_instance.root / "queue"
    postfix, postdrop = pwd.getpwnam("postfix").pw_uid, __import__("grp").getgrnam("postdrop").gr_gid

    def mode(p: Path) -> tuple[int, int, int]:
        st = p.stat()
        return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
    assert mode(q / "maildrop") == (0o730, postfix, postdrop)
    assert mode(q / "public") == (0o2710, postfix, postdrop)
    for d in ("incoming", "active", "deferred", "hold", "corrupt", "private", "bounce", "defer"):
        m, uid, _ = mode(q / d)
        assert (m, uid) == (0o700, postfix), d
    assert mode(q)[:2] == (0o755, 0)
    assert mode(root_instance.root / "mail")[:2] == (0o755, 0)
    for name in ("postdrop", "postqueue"):
        assert mode(root_instance.root / "bin" / name) == (0o2755, 0, postdrop)
    world_writable = [p for p in root_instance.root.rglob("*")
                      if p.is_dir() and p.stat().st_mode & 0o002]
    assert not world_writable


def test_users_submit_list_and_flush(root_instance, users, postern_bin):
    inst = root_instance
    u1, u2, _ = users
    prepare(inst, users)
    relay = free_port()  # nothing listens: mail for remote.test stays deferred
    postconf(inst, f"relayhost = [127.0.0.1]:{relay}")
    inst.start()
    binary = str(inst.binary)

    # Interactive-style: the user's usual environment, -c via postern's global option.
    r = as_user(u1, [binary, "-c", str(inst.root), "sendmail", "-i", f"{u1.pw_name}@localhost"],
                input=MSG % (u1.pw_name.encode(), b"interactive"))
    assert r.returncode == 0, r
    assert r.stderr == b"", r.stderr
    # Cron-style: no terminal, no session, an almost empty environment, MAIL_CONFIG.
    link = inst.link("sendmail")
    cron_env = {"PATH": "/usr/bin:/bin", "SHELL": "/bin/sh", "LOGNAME": u2.pw_name,
                "HOME": u2.pw_dir, "MAIL_CONFIG": str(inst.root)}
    r = as_user(u2, [str(link), "-FCronDaemon", "-i", "-oem", u2.pw_name],
                input=MSG % (b"cron", b"cron job output"), env=cron_env)
    assert r.returncode == 0, r
    assert r.stderr == b"", r.stderr
    # sendmail -bs (an SMTP dialogue on stdin, as some mail clients submit): smtpd
    # stand-alone hands the message to the set-gid postdrop, as sendmail does.
    dialogue = (b"HELO client\r\nMAIL FROM:<%s@localhost>\r\nRCPT TO:<%s@localhost>\r\nDATA\r\n"
                b"Subject: via bs\r\n\r\nbody\r\n.\r\nQUIT\r\n") % ((u1.pw_name.encode(),) * 2)
    r = as_user(u1, [binary, "-c", str(inst.root), "sendmail", "-bs"], input=dialogue)
    assert r.returncode == 0, r
    assert b"250 2.0.0 Ok: queued" in r.stdout, r.stdout
    inst.wait_for(lambda: "interactive" in subjects(inst, u1.pw_name), what="u1's mail")
    inst.wait_for(lambda: "via bs" in subjects(inst, u1.pw_name), what="u1's sendmail -bs mail")
    assert "ignoring attribute record" not in inst.log()
    inst.wait_for(lambda: "cron job output" in subjects(inst, u2.pw_name), what="u2's mail")
    log = inst.log()
    for u in (u1, u2):
        assert f": uid={u.pw_uid} from=<{u.pw_name}>" in log, log
    delivered = [p for p in inst.new_messages(u1.pw_name)]
    assert delivered[0].stat().st_uid == u1.pw_uid

    # Something to list: a deferred message, then held by the administrator.
    inst.sendmail(["-f", "root@localhost", "far@remote.test"], MSG % (b"root", b"held"))
    queued = inst.wait_for(lambda: [m for m in inst.postqueue_json()
                                    if m["queue_name"] == "deferred"], what="a deferred message")
    qid = queued[0]["queue_id"]
    inst.run("postsuper", "-h", qid)
    for argv in ([binary, "-c", str(inst.root), "mailq"],
                 [binary, "-c", str(inst.root), "postqueue", "-p"],
                 [str(inst.root / "bin" / "postqueue"), "-p"]):
        r = as_user(u1, argv)
        assert r.returncode == 0, r
        out = r.stdout.decode()
        assert f"{qid}!" in out and "far@remote.test" in out, out
        assert "-- 0 Kbytes in 1 Request." in out, out
    r = as_user(u2, [binary, "-c", str(inst.root), "postqueue", "-j"])
    assert r.returncode == 0, r
    assert json.loads(r.stdout.splitlines()[0])["queue_name"] == "hold"
    r = as_user(u2, [binary, "-c", str(inst.root), "postqueue", "-f"])
    assert r.returncode == 0, r

    # postsuper -r: the requeued queue file (mail_owner's, mode 0700) is no forgery.
    inst.run("postsuper", "-r", qid)
    r = as_user(u1, [binary, "-c", str(inst.root), "sendmail", u1.pw_name],
                input=MSG % (u1.pw_name.encode(), b"wakes pickup"))
    assert r.returncode == 0, r
    line = inst.wait_for(lambda: [l for l in inst.log().splitlines() if f"orig_id={qid}" in l],
                         what="the requeued message picked up")[0]
    assert f"uid={pwd.getpwnam('postfix').pw_uid} from=<root@localhost>" in line, line
    assert not list((inst.root / "queue" / "corrupt").iterdir())

    # With the mail system down, a user's mailq is an error, never an empty queue.
    inst.wait_for(lambda: "wakes pickup" in subjects(inst, u1.pw_name), what="u1's second mail")
    inst.stop()
    r = as_user(u1, [binary, "-c", str(inst.root), "mailq"])
    assert r.returncode == 69, r
    assert b"Mail queue is empty" not in r.stdout
    assert b"Queue report unavailable - mail system is down" in r.stderr, r.stderr
    # root still gets the listing (showq run stand-alone, as Postfix's postqueue does).
    assert "far@remote.test" in inst.postqueue_p()


def test_refusals_and_isolation(root_instance, users):
    inst = root_instance
    u1, u2, u3 = users
    prepare(inst, users)
    postconf(inst, f"authorized_submit_users = !{u3.pw_name}, static:anyone",
             f"authorized_mailq_users = {u1.pw_name}", f"authorized_flush_users = {u1.pw_name}")
    inst.start()
    binary, root = str(inst.binary), str(inst.root)
    setgid_postdrop, setgid_postqueue = str(inst.root / "bin/postdrop"), str(inst.root / "bin/postqueue")

    r = as_user(u3, [binary, "-c", root, "sendmail", f"{u1.pw_name}@localhost"], input=b"Subject: no\n\nx\n")
    assert r.returncode == 77, r
    assert f"fatal: User {u3.pw_name}({u3.pw_uid}) is not allowed to submit mail".encode() in r.stderr
    r = as_user(u3, [setgid_postdrop, "-r"], input=b"anything")
    assert r.returncode == 77, r
    r = as_user(u2, [binary, "-c", root, "mailq"])
    assert r.returncode == 77 and b"is not allowed to view the mail queue" in r.stderr, r
    r = as_user(u2, [binary, "-c", root, "postqueue", "-f"])
    assert r.returncode == 77 and b"is not allowed to flush the mail queue" in r.stderr, r
    assert as_user(u1, [binary, "-c", root, "postqueue", "-f"]).returncode == 0

    # A foreign configuration directory (same queue) for the set-gid commands.
    foreign = inst.base / "foreign"
    foreign.mkdir()
    shutil.copy(inst.root / "main.cf", foreign / "main.cf")
    foreign.chmod(0o755)
    for argv, env in (([setgid_postqueue, "-c", str(foreign), "-p"], None),
                      ([setgid_postqueue, "-p"], {"MAIL_CONFIG": str(foreign), "PATH": "/usr/bin:/bin"}),
                      ([setgid_postdrop, "-c", str(foreign)], None)):
        r = as_user(u1, argv, env=env)
        assert r.returncode != 0, r
        assert b"unauthorized configuration directory name: " + str(foreign).encode() in r.stderr, r
    postconf(inst, f"alternate_config_directories = {foreign}")
    r = as_user(u1, [setgid_postqueue, "-c", str(foreign), "-p"])
    assert r.returncode == 0, r

    # What a user can reach directly: nothing under the queue.
    q = inst.root / "queue"
    probe = f"""
import errno, json, os, socket, sys
q = {str(q)!r}
out = {{}}
def t(name, f):
    try:
        f(); out[name] = 0
    except OSError as e:
        out[name] = e.errno
t("write maildrop", lambda: open(q + "/maildrop/X1", "w"))
for d in ("maildrop", "incoming", "active", "deferred", "hold", "corrupt", "private", "public"):
    t("list " + d, lambda d=d: os.listdir(q + "/" + d))
t("read queue file", lambda: open(q + "/hold/" + sys.argv[1]))
for cls, names in (("public", ("cleanup", "pickup", "qmgr", "flush", "showq")),
                   ("private", ("bounce", "local", "smtp", "rewrite"))):
    for n in names:
        s = socket.socket(socket.AF_UNIX)
        t("connect " + cls + "/" + n, lambda s=s, p=q + "/" + cls + "/" + n: s.connect(p))
print(json.dumps(out))
"""
    inst.sendmail(["-f", "root@localhost", f"{u1.pw_name}@localhost"], MSG % (b"root", b"x"))
    r = as_user(u1, [PY, "-c", probe, "ANYID"])
    assert r.returncode == 0, r
    results = json.loads(r.stdout)
    assert results and all(v == 13 for v in results.values()), results


def test_forged_maildrop_file_goes_to_corrupt(root_instance, users):
    inst = root_instance
    u1, u2, _ = users
    prepare(inst, users)
    inst.start()
    forged_id = "F0F0F0F0F01"
    path = inst.root / "queue" / "maildrop" / forged_id
    path.write_bytes(qfile(u1.pw_name, f"{u2.pw_name}@localhost",
                          [("origin_uid", "0"), ("filter", "smtp:[127.0.0.1]:9")],
                          b"Subject: forged\n\nforged\n"))
    os.chown(path, u1.pw_uid, u1.pw_gid)
    path.chmod(0o744)
    # A real submission wakes pickup, which also finds the forged file.
    r = as_user(u1, [str(inst.binary), "-c", str(inst.root), "sendmail", f"{u2.pw_name}@localhost"],
                input=MSG % (u1.pw_name.encode(), b"genuine"))
    assert r.returncode == 0, r
    inst.wait_for(lambda: "genuine" in subjects(inst, u2.pw_name), what="the genuine message")
    line = inst.wait_for(lambda: [l for l in inst.log().splitlines()
                                  if f"warning: uid={u1.pw_uid}: maildrop/{forged_id}" in l],
                         what="pickup's warning")[0]
    assert "forbidden attribute record" in line and "moved to corrupt/" in line, line
    assert (inst.root / "queue" / "corrupt" / forged_id).exists()
    assert "forged" not in subjects(inst, u2.pw_name)
    assert f"uid=0 from=<{u1.pw_name}>" not in inst.log()
