"""test_set_permissions.py -- `postern set-permissions`, `postern check` and `start` over the
owners and modes of the whole tree (Postfix's postfix-files), the accounts `postern init`
creates as root, and the system layout `postern init --system --config-only` writes.

* System layout: `init --system --config-only DIR` writes main.cf and master.cf (0644) and
  never overwrites them; master.cf's chroot column equals that of Debian's stock master.cf
  (/etc/postfix/master.cf, else /usr/share/postfix/master.cf.dist) for every service both
  have, and SMTP listens on port 25 (`smtp inet`).
* Accounts: a root `init` naming accounts that do not exist (`-o mail_owner=postern_tNNN
  -o setgid_group=postern_gNNN`, so the machine's real postfix account is never touched)
  creates a system user (shell /usr/sbin/nologin, home the queue, not created) and a group,
  and says so; they are removed with userdel/groupdel at the end. When useradd refuses
  (a ':' in the home directory), init fails with the exact command still to run.
* Repair: that instance is broken in eight ways (maildrop 0777, a queue directory chowned
  to nobody, a world-writable main.cf, bin/postdrop removed, a queue directory removed, a
  queue file owned by nobody, a world-writable queue file, a world-writable table). `check` lists each with the
  fix, `start` refuses with the set-permissions command, an ordinary user's
  set-permissions is refused, root's repairs (one line per change), `check` is clean, and
  mail flows from root and, through the restored set-gid postdrop, from an ordinary user.
"""

from __future__ import annotations

import grp
import os
import pwd
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from postern import COMMAND_TIMEOUT, Instance, as_user_prefix, ensure_user

FIX = 'run "postern -c {} set-permissions"'


def services(text: str) -> dict[tuple[str, str], str]:
    """(service, type) -> chroot column ('-' read as n) of a master.cf text."""
    out = {}
    for line in text.splitlines():
        if not line.strip() or line[0] in "# \t":
            continue
        f = line.split()
        if len(f) >= 8:
            out[(f[0], f[1])] = "n" if f[4] == "-" else f[4]
    return out


def stock_master_cf() -> str:
    for p in ("/etc/postfix/master.cf", "/usr/share/postfix/master.cf.dist"):
        if Path(p).is_file():
            return Path(p).read_text()
    pytest.skip("Debian's stock master.cf is not installed")


def test_system_config_only(postern_bin: Path, tmp_path: Path) -> None:
    d = tmp_path / "stage" / "etc" / "postern"
    r = subprocess.run([str(postern_bin), "init", "--system", "--config-only", str(d)],
                       capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert f"wrote {d}/main.cf" in r.stdout and f"wrote {d}/master.cf" in r.stdout
    assert sorted(p.name for p in d.iterdir()) == ["main.cf", "master.cf"]
    for name in ("main.cf", "master.cf"):
        assert (d / name).stat().st_mode & 0o777 == 0o644

    ours = services((d / "master.cf").read_text())
    debian = services(stock_master_cf())
    assert ours[("smtp", "inet")] == "y"
    common = sorted(set(ours) & set(debian))
    assert len(common) >= 20, common
    diff = {k: (ours[k], debian[k]) for k in common if ours[k] != debian[k]}
    assert not diff, f"chroot column differs from Debian's stock master.cf: {diff}"
    # Services only Postern lists are not jailed.
    assert all(ours[k] == "n" for k in set(ours) - set(debian))

    get = lambda p: subprocess.run([str(postern_bin), "-c", str(d), "postconf", "-h", p],
                                   capture_output=True, text=True, timeout=COMMAND_TIMEOUT).stdout.strip()
    assert get("queue_directory") == "/var/spool/postern"
    assert get("data_directory") == "/var/lib/postern"
    assert get("daemon_directory") == "/usr/lib/postern"
    assert get("mail_owner") == "postfix" and get("setgid_group") == "postdrop"

    # Never overwritten.
    (d / "master.cf").write_text("# the administrator's\n")
    r = subprocess.run([str(postern_bin), "init", "--system", "--config-only", str(d)],
                       capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert f"kept existing {d}/master.cf" in r.stdout
    assert (d / "master.cf").read_text() == "# the administrator's\n"


@pytest.fixture
def accounts():
    """Names of a user and a group that do not exist; whatever init made is removed."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    for tool in ("useradd", "userdel", "groupadd", "groupdel"):
        if not shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin"):
            pytest.skip(f"{tool} not installed")
    n = random.randrange(10**5, 10**6)
    user, group = f"postern_t{n}", f"postern_g{n}"
    for name, db in ((user, pwd.getpwnam), (group, grp.getgrnam)):
        try:
            db(name)
            pytest.skip(f"{name} exists")
        except KeyError:
            pass
    try:
        yield user, group
    finally:
        subprocess.run(["userdel", user], capture_output=True, timeout=COMMAND_TIMEOUT)
        for g in (group, user):
            try:
                grp.getgrnam(g)
            except KeyError:
                continue
            subprocess.run(["groupdel", g], capture_output=True, timeout=COMMAND_TIMEOUT)


def test_accounts_break_and_repair(accounts, make_instance) -> None:
    # `accounts` first: torn down last, once the instance (processes of the user) is gone.
    user, group = accounts
    inst: Instance = make_instance(user=None, init=False)
    root = inst.root
    r = inst.run_raw(["init", str(root), "--smtp-listen", inst.listen,
                      "-o", f"mail_owner={user}", "-o", f"setgid_group={group}"])
    assert f"created system user {user} and group {group}" in r.stdout.decode()
    pw = pwd.getpwnam(user)
    assert pw.pw_shell == "/usr/sbin/nologin"
    assert pw.pw_dir == str(root / "queue")
    assert pw.pw_uid < 1000, "not a system account"
    gid = grp.getgrnam(group).gr_gid
    q = root / "queue"
    assert (q / "maildrop").stat().st_gid == gid and (q / "active").stat().st_uid == pw.pw_uid
    assert inst.run("check", check=False).returncode == 0, inst.run("check", check=False).stderr

    # Eight ways to break it.
    nobody = pwd.getpwnam("nobody").pw_uid
    (q / "maildrop").chmod(0o777)
    os.chown(q / "deferred", nobody, -1)
    (root / "main.cf").chmod(0o666)
    (root / "bin" / "postdrop").unlink()
    (q / "hold").rmdir()
    foreign = q / "saved" / "F00BA4"
    foreign.write_bytes(b"not a queue file\n")
    os.chown(foreign, nobody, -1)
    writable = q / "corrupt" / "W00BA4"
    writable.write_bytes(b"x\n")
    os.chown(writable, pw.pw_uid, -1)
    writable.chmod(0o666)
    table = root / "virtual"
    table.write_text("a@example.com b\n")
    table.chmod(0o646)

    fix = FIX.format(root)
    r = inst.run("check", check=False)
    err = r.stderr.decode()
    assert r.returncode == 1
    expected = [
        f"{q}/maildrop: mode 0777, expected 0730",
        f"{q}/deferred: owned by uid {nobody}, expected mail_owner {user}",
        f"{root}/main.cf: writable by group or others (mode 0666)",
        f"{root}/bin/postdrop: missing",
        f"{q}/hold: missing",
        f"{foreign}: owned by uid {nobody}, not by mail_owner {user}",
        f"{writable}: writable by group or others (mode 0666)",
        f"{table}: writable by group or others (mode 0646)",
    ]
    lines = [l for l in err.splitlines() if "warning:" in l]
    for e in expected:
        hit = [l for l in lines if e in l]
        assert hit, f"check does not report {e!r}:\n{err}"
        assert hit[0].endswith(fix), hit[0]
    assert len(lines) == len(expected), err

    r = inst.run("start", check=False)
    assert r.returncode != 0 and inst.master_pid() is None
    err = r.stderr.decode()
    assert f"missing queue directory {q}/hold: {fix}" in err, err
    assert f"{q}/maildrop: mode 0777, expected 0730: {fix}" in err, err

    ordinary = ensure_user()
    r = subprocess.run(as_user_prefix(ordinary) + [str(inst.binary), "-c", str(root), "set-permissions"],
                       capture_output=True, text=True, timeout=COMMAND_TIMEOUT, cwd="/")
    assert r.returncode == 1 and "must be run by root" in r.stderr, r.stderr
    assert (q / "maildrop").stat().st_mode & 0o7777 == 0o777

    r = inst.run("set-permissions")
    out = r.stdout.decode()
    for e in expected:
        assert e in out, f"set-permissions did not repair {e!r}:\n{out}"
    assert inst.run("check", check=False).returncode == 0, inst.run("check", check=False).stderr
    assert inst.run("set-permissions").stdout.decode().strip().endswith("owners and modes are as they should be")
    assert foreign.stat().st_uid == pw.pw_uid and writable.stat().st_mode & 0o777 == 0o644
    assert (root / "bin" / "postdrop").stat().st_mode & 0o7777 == 0o2755
    foreign.unlink()
    writable.unlink()

    # Mail flows, from root and through the restored set-gid postdrop.
    inst.start()
    inst.sendmail(["root@localhost"], b"Subject: from root\n\nbody\n")
    env = {"PATH": "/usr/bin:/bin", "LANG": "C", "TZ": "UTC"}
    r = subprocess.run(as_user_prefix(ordinary) + [str(inst.binary), "-c", str(root), "sendmail",
                                                   "root@localhost"],
                       input=b"Subject: from a user\n\nbody\n", capture_output=True, env=env,
                       timeout=COMMAND_TIMEOUT, cwd="/")
    assert r.returncode == 0, r.stderr
    inst.wait_for_mail("root", count=2)
    assert f"uid={ordinary.pw_uid} " in inst.log()


def test_system_layout_in_a_temp_root(postern_bin: Path, accounts, tmp_path: Path) -> None:
    """`init --system DIR` (not --config-only) with a main.cf whose paths point into a temp
    dir: accounts, the tree with the set-gid copies in daemon_directory, DIR/aliases.db;
    the machine's /etc/aliases.db (Debian's Postfix) is not touched."""
    user, group = accounts
    base = tmp_path / "root"
    base.mkdir()
    base.chmod(0o755)
    tmp_path.chmod(0o755)
    etc = base / "etc"
    etc.mkdir()
    (etc / "main.cf").write_text(
        f"queue_directory = {base}/spool\ndata_directory = {base}/lib\n"
        f"daemon_directory = {base}/libexec\nmail_owner = {user}\nsetgid_group = {group}\n")
    aliases_db = Path("/etc/aliases.db")
    before = aliases_db.stat().st_mtime_ns if aliases_db.exists() else None
    r = subprocess.run([str(postern_bin), "init", "--system", str(etc)], capture_output=True,
                       text=True, timeout=COMMAND_TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"kept existing {etc}/main.cf" in r.stdout
    assert f"created system user {user} and group {group}" in r.stdout
    assert f"{base}/libexec/postdrop: missing: copied from" in r.stdout
    for name in ("postdrop", "postqueue"):
        st = (base / "libexec" / name).stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, grp.getgrnam(group).gr_gid, 0o2755)
    assert (base / "spool" / "maildrop").stat().st_mode & 0o7777 == 0o730
    assert (base / "lib").stat().st_uid == pwd.getpwnam(user).pw_uid
    assert (etc / "aliases.db").is_file()
    assert (aliases_db.stat().st_mtime_ns if aliases_db.exists() else None) == before
    r = subprocess.run([str(postern_bin), "-c", str(etc), "check"], capture_output=True,
                       text=True, timeout=COMMAND_TIMEOUT)
    assert "set-permissions" not in r.stderr, r.stderr


def test_account_creation_failure_names_the_command(postern_bin: Path, accounts) -> None:
    """useradd refuses the home directory (a ':' in the path): init fails with the exact
    command still to run."""
    user, group = accounts
    base = Path(tempfile.mkdtemp(prefix="postern-it-a:"))
    try:
        base.chmod(0o755)
        r = subprocess.run([str(postern_bin), "init", str(base / "i"), "-o", f"mail_owner={user}",
                            "-o", f"setgid_group={group}"], capture_output=True, text=True,
                           timeout=COMMAND_TIMEOUT)
        assert r.returncode == 1
        want = (f"create the accounts with: useradd --system --no-create-home --home-dir {base}/i/queue "
                f"--shell /usr/sbin/nologin --user-group {user}")
        assert want in r.stderr, r.stderr
        with pytest.raises(KeyError):
            pwd.getpwnam(user)
    finally:
        shutil.rmtree(base, ignore_errors=True)
