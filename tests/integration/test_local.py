"""The local delivery agent run as root (issue 5 §3): aliases (address lists,
:include:, |command, /file, owner-, loops), .forward, mailbox_command(_maps),
home_mailbox, luser_relay, delivery as the recipient, bad input (full mailbox,
planted symlink, foreign mailbox), and 1,000 concurrent deliveries to one mbox.
Mailboxes are read back with Python's `mailbox` and Dovecot's `doveadm`."""

from __future__ import annotations

import email
import email.policy
import mailbox
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

USERS = ("pl-alice", "pl-bob", "pl-carol")
MSG = b"From: sender@localhost\nSubject: %s\n\nhello\nFrom the body\n"


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def homes():
    """Three accounts with real home directories, removed at the end."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    base = Path(tempfile.mkdtemp(prefix="postern-local-homes-"))
    base.chmod(0o755)
    made = []
    try:
        for u in USERS:
            try:
                pwd.getpwnam(u)
                subprocess.run(["userdel", "-r", u], capture_output=True, timeout=30)
            except KeyError:
                pass
            r = subprocess.run(["useradd", "--create-home", "--home-dir", str(base / u),
                                "--shell", "/bin/sh", "--user-group", u],
                               capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                pytest.skip(f"useradd {u}: {r.stderr.strip()}")
            made.append(u)
            (base / u).chmod(0o755)
        yield {u: pwd.getpwnam(u) for u in USERS}
    finally:
        for u in made:
            subprocess.run(["userdel", "-r", u], capture_output=True, timeout=30)
        shutil.rmtree(base, ignore_errors=True)


def postconf(inst, *settings: str) -> None:
    inst.run("postconf", "-e", *settings)


def parse(raw: bytes) -> email.message.Message:
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def maildir_msgs(inst, user: str) -> list[email.message.Message]:
    return [parse(p.read_bytes()) for p in inst.new_messages(user)]


def subjects(inst, user: str) -> list[str]:
    return sorted(m["Subject"] for m in maildir_msgs(inst, user))


def wait_subject(inst, user: str, subject: str) -> email.message.Message:
    def find():
        return next((m for m in maildir_msgs(inst, user) if m["Subject"] == subject), None)
    return inst.wait_for(find, what=f"{subject!r} in {user}'s Maildir")


def dsn_status(msg: email.message.Message) -> list[str]:
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            return [b.get("Status", "") for b in part.get_payload()[1:]]
    raise AssertionError("no delivery-status part")


def send(inst, rcpt: str, subject: bytes, sender: str = "sender@localhost") -> None:
    inst.sendmail(["-f", sender, rcpt], MSG % subject)


def doveadm(location: str, owner: pwd.struct_passwd, what: str = "hdr.subject") -> list[str] | None:
    """Field values of every message in INBOX at a Dovecot mail_location, read by
    doveadm with the owner's ids and in-memory indexes (None when doveadm is not
    installed)."""
    if shutil.which("doveadm") is None:
        return None
    r = subprocess.run(
        ["doveadm", "-o", f"mail_location={location}:INDEX=MEMORY", "-o", "first_valid_uid=1",
         "-o", f"mail_uid={owner.pw_uid}", "-o", f"mail_gid={owner.pw_gid}",
         "-o", "mail_privileged_group=", "-o", "mbox_read_locks=fcntl",
         "fetch", what, "mailbox", "INBOX", "all"],
        capture_output=True, text=True, timeout=60,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "USER": owner.pw_name, "HOME": owner.pw_dir})
    assert r.returncode == 0, r.stderr
    key = what.split()[0].lower() + ":"
    return [l.split(":", 1)[1].strip() for l in r.stdout.splitlines() if l.lower().startswith(key)]


def write(path: Path, text: str, owner=None, mode: int = 0o644) -> Path:
    path.write_text(text)
    path.chmod(mode)
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)
    return path


def drop_box(inst) -> Path:
    """A directory every account (nobody included) may write, for file deliveries."""
    d = inst.base / "drop"
    d.mkdir(exist_ok=True)
    d.chmod(0o1777)
    return d


# --------------------------------------------------------------------------- aliases

def test_aliases_commands_files_include_owner_and_loops(root_instance, homes):
    inst = root_instance
    alice, bob = homes["pl-alice"], homes["pl-bob"]
    nobody = pwd.getpwnam("nobody")
    drop = drop_box(inst)
    members = write(inst.root / "members", "# the list\npl-bob\n")
    cmds = write(inst.root / "cmds", '"|cat > /dev/null"\n')
    aliases = write(inst.root / "aliases", "\n".join([
        "team pl-alice, pl-bob",
        "postmaster pl-alice",
        f"tofile {drop}/file.mbox",
        f'tocmd "|cat > {drop}/cmd.out; env > {drop}/cmd.env"',
        f"incl :include:{members}",
        f"inclcmd :include:{cmds}",
        "list pl-alice, pl-bob",
        "owner-list pl-carol",
        "loopa loopb",
        "loopb loopa",
        "self self, pl-alice",
        "",
    ]))
    postconf(inst, f"alias_maps = texthash:{aliases}", "recipient_delimiter = +")
    inst.start()

    send(inst, "team@localhost", b"team")
    send(inst, "postmaster@localhost", b"pm")
    for u in ("pl-alice", "pl-bob"):
        m = wait_subject(inst, u, "team")
        assert m["Delivered-To"] == "team@localhost"
        assert m["X-Original-To"] == "team@localhost"
        assert m["Return-Path"] == "<sender@localhost>"
    files = inst.new_messages("pl-bob")
    assert all(p.stat().st_uid == bob.pw_uid for p in files)
    wait_subject(inst, "pl-alice", "pm")

    # /file as default_privs, mbox format with >From quoting.
    send(inst, "tofile@localhost", b"file")
    inst.wait_for(lambda: (drop / "file.mbox").exists() and b"Subject: file" in (drop / "file.mbox").read_bytes(),
                  what="file delivery")
    assert (drop / "file.mbox").stat().st_uid == nobody.pw_uid
    box = mailbox.mbox(str(drop / "file.mbox"))
    [m] = list(box)
    assert m["Subject"] == "file" and m["Delivered-To"] == "tofile@localhost"
    assert ">From the body" in m.get_payload()

    # |command as default_privs with Postfix's environment.
    send(inst, "tocmd+ext@localhost", b"cmd")
    inst.wait_for(lambda: (drop / "cmd.env").exists() and "RECIPIENT=" in (drop / "cmd.env").read_text(),
                  what="command delivery")
    assert (drop / "cmd.out").stat().st_uid == nobody.pw_uid
    out = (drop / "cmd.out").read_text()
    assert out.startswith("From sender@localhost ") and "Subject: cmd" in out
    env = dict(l.split("=", 1) for l in (drop / "cmd.env").read_text().splitlines() if "=" in l)
    assert env["SENDER"] == "sender@localhost"
    assert env["RECIPIENT"] == "tocmd+ext@localhost"
    assert env["LOCAL"] == "tocmd+ext" and env["EXTENSION"] == "ext" and env["DOMAIN"] == "localhost"
    assert env["USER"] == "tocmd" and env["PATH"] == "/usr/bin:/bin"
    assert env["ORIGINAL_RECIPIENT"] == "tocmd+ext@localhost"

    # :include: members are re-submitted as new mail; commands from include files are refused.
    send(inst, "incl@localhost", b"incl")
    m = wait_subject(inst, "pl-bob", "incl")
    assert m.get_all("Delivered-To")[1:] == ["incl@localhost"], m.get_all("Delivered-To")
    send(inst, "inclcmd@localhost", b"inclcmd", sender="pl-alice@localhost")
    ndr = wait_subject(inst, "pl-alice", "Undelivered Mail Returned to Sender")
    assert dsn_status(ndr) == ["5.7.1"]

    # owner-list becomes the envelope sender of the list's copies.
    send(inst, "list@localhost", b"list")
    m = wait_subject(inst, "pl-bob", "list")
    assert m["Return-Path"].startswith("<owner-list@"), m["Return-Path"]

    # Alias loop: bounced with 5.4.6; an alias naming itself means the account.
    send(inst, "loopa@localhost", b"loop", sender="pl-bob@localhost")
    ndr = wait_subject(inst, "pl-bob", "Undelivered Mail Returned to Sender")
    assert dsn_status(ndr) == ["5.4.6"]
    send(inst, "self@localhost", b"self")
    wait_subject(inst, "pl-alice", "self")
    log = inst.log()
    assert "forwarded as " in log and "orig_to=<incl@localhost>" in log
    assert "delivered to command: cat > " in log and f"delivered to file: {drop}/file.mbox" in log

    # Dovecot reads the Maildir local wrote.
    got = doveadm(f"maildir:{inst.maildir_path('pl-bob')}", bob)
    if got is not None:
        assert sorted(got) == subjects(inst, "pl-bob")


# --------------------------------------------------------------------------- .forward and users

def test_forward_mailbox_command_and_luser_relay(root_instance, homes):
    inst = root_instance
    alice, bob, carol = homes["pl-alice"], homes["pl-bob"], homes["pl-carol"]
    bhome, chome = Path(bob.pw_dir), Path(carol.pw_dir)
    write(bhome / ".forward", '\\pl-bob, "|cat > $HOME/fwd.out"\n', owner=bob)
    write(bhome / ".forward+list", "pl-alice\n", owner=bob)
    postconf(inst, "recipient_delimiter = +", "luser_relay = pl-alice+lost-$user",
             'mailbox_command_maps = inline:{ {pl-carol=cat > $$HOME/mc.out; env > $$HOME/mc.env} }')
    inst.start()

    send(inst, "pl-bob@localhost", b"fwd")
    wait_subject(inst, "pl-bob", "fwd")
    out = inst.wait_for(lambda: (bhome / "fwd.out").exists() and (bhome / "fwd.out").read_text(),
                        what=".forward command")
    assert "Subject: fwd" in out and (bhome / "fwd.out").stat().st_uid == bob.pw_uid

    # .forward+EXT ($extension in forward_path): forwarded to alice as new mail.
    send(inst, "pl-bob+list@localhost", b"ext")
    m = wait_subject(inst, "pl-alice", "ext")
    assert "pl-bob+list@localhost" in m.get_all("Delivered-To"), m.get_all("Delivered-To")

    # mailbox_command_maps: the user's command, as the user, with HOME and SHELL.
    send(inst, "pl-carol@localhost", b"mc")
    inst.wait_for(lambda: (chome / "mc.env").exists() and "HOME=" in (chome / "mc.env").read_text(),
                  what="mailbox_command")
    assert (chome / "mc.out").stat().st_uid == carol.pw_uid
    env = dict(l.split("=", 1) for l in (chome / "mc.env").read_text().splitlines() if "=" in l)
    assert env["HOME"] == str(chome) and env["USER"] == "pl-carol" and env["SHELL"] == "/bin/sh"
    assert "Subject: mc" in (chome / "mc.out").read_text()

    # An unknown user goes to luser_relay.
    send(inst, "nobody-here@localhost", b"lost")
    m = wait_subject(inst, "pl-alice", "lost")
    assert m["Delivered-To"] == "nobody-here@localhost"
    # local logs the delivery after the Maildir file is in place.
    inst.wait_for(lambda: "to=<pl-alice+lost-nobody-here@" in inst.log(), what="luser_relay log line")

    # A world-writable .forward is ignored: the mailbox gets the mail.
    (bhome / ".forward").chmod(0o666)
    send(inst, "pl-bob@localhost", b"ww")
    wait_subject(inst, "pl-bob", "ww")
    assert "is world writable" in inst.log()


# --------------------------------------------------------------------------- mbox, bad input

def test_home_mbox_bad_input(root_instance, homes):
    inst = root_instance
    alice, bob, carol = homes["pl-alice"], homes["pl-bob"], homes["pl-carol"]
    spool = inst.root / "spool"
    spool.mkdir()
    spool.chmod(0o755)
    postconf(inst, f"mail_spool_directory = {spool}", "mailbox_size_limit = 2000",
             "home_mailbox =", "deliver_lock_attempts = 2", "deliver_lock_delay = 1s")
    # A symlink planted where carol's spool mbox goes, pointing at bob's file.
    victim = Path(bob.pw_dir) / "victim"
    write(victim, "untouched\n", owner=bob, mode=0o666)
    os.symlink(victim, spool / "pl-carol")
    # A mailbox that belongs to someone else.
    write(spool / "pl-bob", "", owner=alice, mode=0o600)
    inst.start()

    send(inst, "pl-alice@localhost", b"m1")
    send(inst, "pl-carol@localhost", b"sym")
    send(inst, "pl-bob@localhost", b"foreign")
    inst.wait_for(lambda: (spool / "pl-alice").exists() and b"Subject: m1" in (spool / "pl-alice").read_bytes(),
                  what="spool mbox")
    st = (spool / "pl-alice").stat()
    assert (st.st_uid, st.st_mode & 0o777) == (alice.pw_uid, 0o600)
    inst.wait_for(lambda: "symbolic link" in inst.log() and "wrong owner" in inst.log(),
                  what="symlink and owner deferrals")
    assert victim.read_text() == "untouched\n"
    assert (spool / "pl-bob").read_bytes() == b""
    assert "status=deferred" in inst.log()

    # Full mailbox: bounces with 5.2.2, the mbox is unchanged.
    before = (spool / "pl-alice").read_bytes()
    inst.sendmail(["-f", "pl-bob@localhost", "pl-alice@localhost"], b"Subject: big\n\n" + b"x" * 3000 + b"\n")
    inst.wait_for(lambda: "exceed mailbox size limit" in inst.log(), what="size limit bounce")
    assert (spool / "pl-alice").read_bytes() == before
    box = mailbox.mbox(str(spool / "pl-alice"))
    assert [m["Subject"] for m in box] == ["m1"]
    got = doveadm(f"mbox:{spool}:INBOX={spool / 'pl-alice'}", alice)
    if got is not None:
        assert got == ["m1"]


def test_thousand_concurrent_deliveries_to_one_mbox(root_instance, homes):
    if shutil.which("smtp-source") is None:
        pytest.skip("smtp-source not installed")
    inst = root_instance
    alice = homes["pl-alice"]
    postconf(inst, "home_mailbox = Mailbox", "local_destination_concurrency_limit = 20",
             "mailbox_size_limit = 0", "deliver_lock_delay = 1s", "deliver_lock_attempts = 60")
    box_path = Path(alice.pw_dir) / "Mailbox"
    if box_path.exists():
        box_path.unlink()
    inst.start()
    r = subprocess.run(["smtp-source", "-c", "-s", "10", "-m", "1000", "-l", "200",
                        "-f", "load@localhost", "-t", "pl-alice@localhost", inst.listen],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr

    def count():
        try:
            return box_path.read_bytes().count(b"\nReturn-Path: <load@localhost>\n")
        except FileNotFoundError:
            return 0
    deadline = 25
    for _ in range(8):  # up to 8 bounded waits: 1,000 deliveries on 2 busy cores
        try:
            inst.wait_for(lambda: count() >= 1000, timeout=deadline, what="1000 messages in the mbox")
            break
        except AssertionError:
            continue
    assert count() == 1000
    msgs = list(mailbox.mbox(str(box_path)))
    assert len(msgs) == 1000
    assert all(m["Delivered-To"] == "pl-alice@localhost" for m in msgs)
    assert box_path.stat().st_uid == alice.pw_uid
    # Deliveries really ran side by side: several local processes delivered.
    pids = {l.split("postfix/local[", 1)[1].split("]", 1)[0]
            for l in inst.log().splitlines() if "postfix/local[" in l and "status=sent" in l}
    assert len(pids) > 1, pids
    got = doveadm(f"mbox:{box_path.parent}:INBOX={box_path}", alice, "hdr.delivered-to")
    if got is not None:
        assert len(got) == 1000


# --------------------------------------------------------------------------- hash: tables, non-root

def test_hash_aliases_run_commands_as_the_table_owner(root_instance, homes):
    """An alias table owned by a user (built by `postern postalias`) gives its
    |commands that user's rights; a root-owned one gives default_privs."""
    inst = root_instance
    alice = homes["pl-alice"]
    drop = drop_box(inst)
    src = write(inst.root / "user-aliases", f'whoami: "|id -u > {drop}/id.out"\nfan: pl-bob, "pl-carol"\n')
    inst.run("postalias", str(src))
    db = Path(str(src) + ".db")
    assert db.exists()
    os.chown(db, alice.pw_uid, alice.pw_gid)
    postconf(inst, f"alias_maps = hash:{src}")
    inst.start()
    send(inst, "whoami@localhost", b"who")
    send(inst, "fan@localhost", b"fan")
    inst.wait_for(lambda: (drop / "id.out").exists() and (drop / "id.out").read_text().strip(),
                  what="command output")
    assert (drop / "id.out").read_text().strip() == str(alice.pw_uid)
    wait_subject(inst, "pl-bob", "fan")
    wait_subject(inst, "pl-carol", "fan")


def test_non_root_instance_aliases(instance):
    """The non-root instance (everything runs as the invoking user) expands
    aliases and runs commands as itself."""
    inst = instance
    out = inst.base / "cmd.out"
    postconf(inst, f'alias_maps = inline:{{ {{al=r1, r2}}, {{pipe="|cat > {out}"}} }}')
    inst.start()
    send(inst, "al@localhost", b"al")
    send(inst, "pipe@localhost", b"pipe")
    inst.wait_for_mail("r1", 1)
    inst.wait_for_mail("r2", 1)
    inst.wait_for(lambda: out.exists() and "Subject: pipe" in out.read_text(), what="command delivery")
    if inst.user is not None:
        assert out.stat().st_uid == inst.user.pw_uid
