"""Mailbox delivery under attack by ordinary local users (issue 10 §6): a root
instance, accounts made with useradd by the test (removed at the end).

* A user plants a symbolic link where root's Maildir (or a level of it) goes, in a
  world-writable sticky spool: root's mail is deferred with a warning, nothing is
  written through the link, and it is delivered once the administrator removes it.
* A symbolic link at each Maildir level (Maildir, tmp/, new/, cur/) of ordinary
  users, pointing at a directory they could write: refused all the same.
* A user pre-creates another user's Maildir or mbox: the victim's delivery is
  deferred ("owned by uid" / "wrong owner"), the attacker never sees the mail.
* mbox spool: a symlinked mailbox and a mailbox with two hard links are refused.
* virtual(8): the same for directories under virtual_mailbox_base.

Every wait is bounded by the harness; the accounts and the instance are removed
at teardown."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

USERS = ("ma-alice", "ma-bob", "ma-carol", "ma-dave")
MSG = b"From: sender@localhost\nSubject: %s\n\nsecret body\n"


@pytest.fixture(scope="module")
def users():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    made = []
    base = Path(tempfile.mkdtemp(prefix="postern-ma-homes-"))
    base.chmod(0o755)
    try:
        for u in USERS:
            subprocess.run(["userdel", "-r", u], capture_output=True, timeout=30)
            r = subprocess.run(["useradd", "--create-home", "--home-dir", str(base / u),
                                "--shell", "/bin/sh", "--user-group", u],
                               capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                pytest.skip(f"useradd {u}: {r.stderr.strip()}")
            made.append(u)
        yield {u: pwd.getpwnam(u) for u in USERS}
    finally:
        for u in made:
            subprocess.run(["userdel", "-r", u], capture_output=True, timeout=30)
        shutil.rmtree(base, ignore_errors=True)


def as_user(pw, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    """Runs a command with the user's ids only (no supplementary groups)."""
    return subprocess.run(list(argv), user=pw.pw_uid, group=pw.pw_gid, extra_groups=[],
                          capture_output=True, text=True, timeout=30, check=check)


def sticky_dir(path: Path) -> Path:
    """A world-writable sticky directory, as /tmp or a permissive mail spool."""
    path.mkdir(parents=True)
    path.chmod(0o1777)
    return path


def secret_dir(path: Path, mode: int = 0o700) -> Path:
    """A root-owned directory the attack points at (0777: a write would succeed)."""
    path.mkdir(parents=True)
    path.chmod(mode)
    return path


def send(inst, rcpt: str, subject: bytes) -> None:
    inst.sendmail(["-f", "sender@localhost", rcpt], MSG % subject)


def flush(inst) -> None:
    """`postern flush` once no message is in delivery: a deferral is logged by local
    before qmgr files the message under deferred/, and a message still in delivery
    when the flush is asked for keeps its retry time."""
    active = inst.root / "queue" / "active"
    inst.wait_for(lambda: not any(active.iterdir()), what="no message in delivery")
    inst.run("flush")


def wait_log(inst, *needles: str) -> None:
    inst.wait_for(lambda: all(n in inst.log() for n in needles), what=" and ".join(needles))


def messages(maildir: Path) -> list[bytes]:
    new = maildir / "new"
    return sorted(p.read_bytes() for p in new.iterdir()) if new.is_dir() else []


def wait_delivered(inst, maildir: Path, subject: bytes) -> None:
    inst.wait_for(lambda: any(b"Subject: " + subject in m for m in messages(maildir)),
                  what=f"{subject!r} in {maildir}")


def empty_tree(path: Path) -> bool:
    return not any(p.is_file() for p in path.rglob("*"))


def test_maildir_spool_symlinks_and_foreign_maildirs(root_instance, users):
    inst = root_instance
    alice, bob, carol, dave = (users[u] for u in USERS)
    spool = sticky_dir(inst.base / "spool")
    inst.run("postconf", "-e", f"mail_spool_directory = {spool}/")
    root_secret = secret_dir(inst.base / "root-only")
    open_secret = secret_dir(inst.base / "anyone", 0o777)

    # alice, before root's first mail: spool/root -> a root-only directory.
    as_user(alice, "ln", "-s", str(root_secret), str(spool / "root"))
    # alice pre-creates bob's Maildir (world-readable, hers).
    for sub in ("", "tmp", "new", "cur"):
        as_user(alice, "mkdir", "-m", "0777", str(spool / "ma-bob" / sub))
    # carol and dave plant links at the levels of their own Maildirs, towards a
    # directory they could write: tmp/ for carol, new/ for dave, the Maildir for alice.
    for who, level in ((carol, "tmp"), (dave, "new")):
        md = spool / who.pw_name
        for sub in ("", "tmp", "new", "cur"):
            if sub != level:
                as_user(who, "mkdir", "-p", str(md / sub))
        as_user(who, "ln", "-s", str(open_secret), str(md / level))
    as_user(alice, "ln", "-s", str(open_secret), str(spool / "ma-alice"))
    inst.start()

    for rcpt in ("root", "ma-bob", "ma-carol", "ma-dave", "ma-alice"):
        send(inst, f"{rcpt}@localhost", rcpt.encode())
    wait_log(inst, f"{spool}/root is a symbolic link",
             f"directory {spool}/ma-bob is owned by uid {alice.pw_uid}",
             f"{spool}/ma-carol/tmp is a symbolic link",
             f"{spool}/ma-dave/new is a symbolic link",
             f"{spool}/ma-alice is a symbolic link")
    inst.wait_for(lambda: inst.log().count("status=deferred") >= 5, what="5 deferrals")
    log = inst.log()
    assert "warning:" in log and "status=sent" not in log, log
    assert empty_tree(root_secret) and empty_tree(open_secret)
    assert empty_tree(spool / "ma-bob")

    # A symlink at cur/ of root's own (root-owned) Maildir is refused the same way.
    (spool / "root").unlink()
    for sub in ("", "tmp", "new"):
        (spool / "root" / sub).mkdir(mode=0o700, exist_ok=True)
    (spool / "root" / "cur").symlink_to(root_secret)
    flush(inst)
    wait_log(inst, f"{spool}/root/cur is a symbolic link")
    # Every message of this flush is deferred again before the administrator cleans up
    # (a message still in delivery when the next flush arrives waits for its backoff).
    inst.wait_for(lambda: inst.log().count("status=deferred") >= 10, what="10 deferrals")
    assert empty_tree(root_secret)

    # The administrator cleans up; every message is then delivered, as its owner.
    (spool / "root" / "cur").unlink()
    shutil.rmtree(spool / "ma-bob")
    for who, level in ((carol, "tmp"), (dave, "new")):
        (spool / who.pw_name / level).unlink()
    (spool / "ma-alice").unlink()
    flush(inst)
    for rcpt, pw in (("root", None), ("ma-bob", bob), ("ma-carol", carol), ("ma-dave", dave),
                     ("ma-alice", alice)):
        md = spool / rcpt
        wait_delivered(inst, md, rcpt.encode())
        uid = 0 if pw is None else pw.pw_uid
        for sub in ("", "tmp", "new", "cur"):
            st = (md / sub).lstat()
            assert st.st_uid == uid and stat.S_ISDIR(st.st_mode), (md / sub, st)
        for m in (md / "new").iterdir():
            assert m.stat().st_uid == uid
    assert (spool / "ma-bob").stat().st_mode & 0o777 == 0o700
    assert empty_tree(root_secret) and empty_tree(open_secret)
    # alice cannot read bob's mail nor remove it.
    r = as_user(alice, "ls", str(spool / "ma-bob" / "new"), check=False)
    assert r.returncode != 0 and "Permission denied" in r.stderr
    r = as_user(alice, "rm", "-rf", str(spool / "ma-bob"), check=False)
    assert r.returncode != 0 and messages(spool / "ma-bob")


def test_mbox_spool_links_and_foreign_mailboxes(root_instance, users):
    inst = root_instance
    alice, bob, carol = users["ma-alice"], users["ma-bob"], users["ma-carol"]
    spool = sticky_dir(inst.base / "mbox")
    inst.run("postconf", "-e", f"mail_spool_directory = {spool}",
             "deliver_lock_attempts = 2", "deliver_lock_delay = 1s")
    secret = secret_dir(inst.base / "root-only") / "file"
    secret.write_text("root only\n")
    secret.chmod(0o600)
    # alice: a dangling link where root's mailbox goes, a link for carol.
    as_user(alice, "ln", "-s", str(inst.base / "root-only" / "created"), str(spool / "root"))
    as_user(alice, "ln", "-s", str(secret), str(spool / "ma-carol"))
    # alice pre-creates bob's mailbox, readable and writable by all.
    as_user(alice, "install", "-m", "0666", "/dev/null", str(spool / "ma-bob"))
    inst.start()
    send(inst, "root@localhost", b"root1")
    send(inst, "ma-carol@localhost", b"carol1")
    send(inst, "ma-bob@localhost", b"bob1")
    wait_log(inst, f"cannot update mailbox {spool}/root: file is a symbolic link",
             f"cannot update mailbox {spool}/ma-carol: file is a symbolic link",
             f"cannot update mailbox {spool}/ma-bob: file has wrong owner (uid {alice.pw_uid})")
    assert not (inst.base / "root-only" / "created").exists()
    assert secret.read_text() == "root only\n"
    assert (spool / "ma-bob").read_bytes() == b""

    # Hard links: bob's own mailbox linked elsewhere.
    for name in ("root", "ma-carol", "ma-bob"):
        (spool / name).unlink()
    (spool / "ma-bob").write_bytes(b"")
    os.chown(spool / "ma-bob", bob.pw_uid, bob.pw_gid)
    (spool / "ma-bob").chmod(0o600)
    os.link(spool / "ma-bob", inst.base / "bob-copy")
    flush(inst)
    wait_log(inst, f"cannot update mailbox {spool}/ma-bob: file has 2 hard links")
    inst.wait_for(lambda: (spool / "root").exists() and b"root1" in (spool / "root").read_bytes(),
                  what="root's mbox")
    inst.wait_for(lambda: (spool / "ma-carol").exists() and b"carol1" in (spool / "ma-carol").read_bytes(),
                  what="carol's mbox")
    assert (spool / "ma-bob").read_bytes() == b""
    for name, uid in (("root", 0), ("ma-carol", carol.pw_uid)):
        st = (spool / name).lstat()
        assert (st.st_uid, st.st_mode & 0o7777, st.st_nlink) == (uid, 0o600, 1), (name, st)
    (inst.base / "bob-copy").unlink()
    flush(inst)
    inst.wait_for(lambda: b"bob1" in (spool / "ma-bob").read_bytes(), what="bob's mbox")
    r = as_user(alice, "cat", str(spool / "ma-bob"), check=False)
    assert r.returncode != 0


def test_virtual_base_links_and_foreign_directories(root_instance, users):
    inst = root_instance
    alice, bob = users["ma-alice"], users["ma-bob"]
    base = sticky_dir(inst.base / "vmail")
    secret = secret_dir(inst.base / "anyone", 0o777)
    maps = inst.root / "vmailbox"
    maps.write_text("v1@virt.test virt.test/v1/\nv2@virt.test other.test/v2/\n"
                    "v3@virt.test virt.test/v3\n")
    inst.run("postconf", "-e", "virtual_mailbox_domains = virt.test",
             f"virtual_mailbox_base = {base}", f"virtual_mailbox_maps = texthash:{maps}",
             f"virtual_uid_maps = static:{bob.pw_uid}", f"virtual_gid_maps = static:{bob.pw_gid}",
             "virtual_minimum_uid = 100")
    # alice owns the domain directory of virt.test; other.test is a link.
    as_user(alice, "mkdir", "-m", "0777", str(base / "virt.test"))
    as_user(alice, "ln", "-s", str(secret), str(base / "other.test"))
    inst.start()
    for r in ("v1", "v2", "v3"):
        send(inst, f"{r}@virt.test", r.encode())
    wait_log(inst, f"directory {base}/virt.test is owned by uid {alice.pw_uid}",
             f"{base}/other.test is a symbolic link")
    inst.wait_for(lambda: inst.log().count("relay=virtual") >= 3 and
                  inst.log().count("status=deferred") >= 3, what="3 virtual deferrals")
    assert empty_tree(base / "virt.test") and empty_tree(secret)

    shutil.rmtree(base / "virt.test")
    (base / "other.test").unlink()
    for d in ("virt.test", "other.test"):
        (base / d).mkdir(mode=0o755)
        os.chown(base / d, bob.pw_uid, bob.pw_gid)
    flush(inst)
    wait_delivered(inst, base / "virt.test" / "v1", b"v1")
    wait_delivered(inst, base / "other.test" / "v2", b"v2")
    inst.wait_for(lambda: (base / "virt.test" / "v3").exists()
                  and b"v3" in (base / "virt.test" / "v3").read_bytes(), what="v3 mbox")
    for p in (base / "virt.test" / "v1" / "new", base / "virt.test" / "v3"):
        assert p.stat().st_uid == bob.pw_uid
    assert empty_tree(secret)


def test_root_owned_and_group_writable_spools(root_instance, users):
    """The instance's own spool (not writable by users) and a Debian-style 2775
    root:mail spool: users cannot plant anything; each Maildir is created for its
    owner (by root and given away, or as the user with the spool's group)."""
    inst = root_instance
    alice, bob = users["ma-alice"], users["ma-bob"]
    mail = inst.root / "mail"
    mail.mkdir(exist_ok=True)
    assert mail.stat().st_mode & 0o022 == 0, oct(mail.stat().st_mode)
    r = as_user(alice, "ln", "-s", "/root", str(mail / "root"), check=False)
    assert r.returncode != 0 and "Permission denied" in r.stderr
    inst.start()
    for rcpt in ("root", "ma-bob"):
        send(inst, f"{rcpt}@localhost", rcpt.encode())
    for rcpt, uid in (("root", 0), ("ma-bob", bob.pw_uid)):
        wait_delivered(inst, mail / rcpt, rcpt.encode())
        st = (mail / rcpt).lstat()
        assert (st.st_uid, st.st_mode & 0o777) == (uid, 0o700), (rcpt, st)

    try:
        mail_gid = grp.getgrnam("mail").gr_gid
    except KeyError:
        return
    debian = inst.base / "var-mail"
    debian.mkdir()
    os.chown(debian, 0, mail_gid)
    debian.chmod(0o2775)
    inst.run("postconf", "-e", f"mail_spool_directory = {debian}/")
    inst.run("reload")
    r = as_user(alice, "mkdir", str(debian / "ma-bob"), check=False)
    assert r.returncode != 0 and "Permission denied" in r.stderr
    send(inst, "ma-bob@localhost", b"bob2")
    wait_delivered(inst, debian / "ma-bob", b"bob2")
    st = (debian / "ma-bob").lstat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (bob.pw_uid, mail_gid, 0o700), st
