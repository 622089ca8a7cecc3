"""test_package.py -- the Debian packages, installed on this machine beside Debian's Postfix.

Builds `postern` and `postern-mta` with scripts/package (from the already built release
binary: cargo-deb --no-build --fast), installs `postern` with dpkg as a real system would
(root only), and checks, in order (the tests of this module share one installation and run
in file order):
  * the installed files: dpkg -L, the command links, /etc/postern from the packaged defaults,
    the set-gid submission copies (root:postdrop 2755), the queue's owners and modes,
    `systemd-analyze verify` of the unit; Debian's Postfix still works (its postconf, its
    sendmail) and `postern check` accepts the packaged configuration;
  * the unit's ExecStart, ExecReload and ExecStop command lines, run as systemd runs them
    (systemd is not PID 1 here): master on port 25 with the packaged master.cf (chroot jails:
    smtpd's root directory is the queue), mail over SMTP and through `sendmail` from an
    ordinary user (useradd) into /var/mail/USER, and nothing left after ExecStop;
  * an upgrade keeps an edited main.cf and a queued message, and restarts a running master
    with the new binary; `dpkg -r` keeps configuration and queue but removes the set-gid
    copies; a package installed over an existing /etc/postern keeps the administrator's files;
  * `dpkg --purge` of a running Postern leaves no process and no /etc/postern,
    /var/spool/postern or /var/lib/postern, and keeps the shared `postfix` account;
  * postern-mta: Provides/Conflicts/Replaces mail-transport-agent and the sendmail links
    (checked in the .deb: installing it would remove Postfix; dpkg refuses it beside Postfix).

The only configuration change for the mail flow is `maillog_file = /var/log/postern-test.log`
(no syslog daemon here); the upgrade and reinstall cases edit main.cf and master.cf only to
see the edits kept. Skipped unless root with dpkg and cargo-deb; skipped when port 25 is
taken, or when a `postern` package this module did not install, /etc/postern,
/var/spool/postern, /var/lib/postern or /usr/lib/postern is already there. Everything is
purged at the end, and every process of the packaged binary is gone (checked in /proc).
Time: about 6 s for scripts/package, 40 s in all.
"""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import shutil
import smtplib
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from postern import REPO, Proc, kill_procs

PACKAGE_TIMEOUT = 300       # scripts/package: staging and two cargo-deb runs, no compiling
DPKG_TIMEOUT = 120
WAIT = 30.0
LOG = Path("/var/log/postern-test.log")
CONFIG = Path("/etc/postern")
QUEUE = Path("/var/spool/postern")
POSTERN = "/usr/sbin/postern"
UNIT = Path("/lib/systemd/system/postern.service")
# What systemd gives a service: a fixed PATH, no inherited environment.
SYSTEMD_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
COMMANDS = ("sendmail", "mailq", "newaliases", "postqueue", "postsuper", "postconf", "postcat",
            "postmap", "postalias")


def run(argv: list[str], timeout: float = 60, check: bool = True, input: bytes | None = None,
        env: dict | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, timeout=timeout, input=input,
                       stdin=None if input is not None else subprocess.DEVNULL,
                       env=env if env is not None else {**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if check and r.returncode != 0:
        raise AssertionError(f"$ {' '.join(argv)}\nexit {r.returncode}\n"
                             f"{r.stdout.decode(errors='replace')[-3000:]}\n"
                             f"{r.stderr.decode(errors='replace')[-3000:]}\n{log_tail()}")
    return r


def log_tail(n: int = 60) -> str:
    try:
        return "--- " + str(LOG) + " ---\n" + "\n".join(LOG.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def wait_for(pred, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{log_tail()}")
        time.sleep(0.1)


def installed_version(name: str = "postern") -> str | None:
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Status} ${Version}", name],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        return None
    parts = r.stdout.split()
    return parts[3] if len(parts) == 4 and parts[2] == "installed" else None


def package_state(name: str = "postern") -> str:
    r = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Status}", name],
                       capture_output=True, text=True, timeout=30)
    return r.stdout.strip() if r.returncode == 0 else "not-installed"


def packaged_procs() -> list[Proc]:
    """Every process running the packaged binary or one of its set-gid copies (also after
    dpkg deleted the file: the link then ends in ' (deleted)')."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            exe = os.readlink(f"/proc/{d}/exe")
        except OSError:
            continue
        if exe.startswith(POSTERN) or exe.startswith("/usr/lib/postern/"):
            p = Proc.of(int(d))
            if p is not None and p.alive():
                out.append(p)
    return out


def argv0(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def unit_commands() -> dict[str, list[list[str]]]:
    """ExecStart/ExecReload/ExecStop command lines of the installed unit, split as systemd
    splits them (a leading '-' means: failure ignored)."""
    cmds: dict[str, list[list[str]]] = {}
    for line in UNIT.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() in ("ExecStart", "ExecReload", "ExecStop", "ExecStartPre", "PIDFile"):
            cmds.setdefault(key.strip(), []).append(shlex.split(value.strip()))
    return cmds


def systemd_exec(key: str) -> None:
    """Runs the unit's KEY command lines in order, as systemd would (root, its PATH)."""
    for argv in unit_commands().get(key, []):
        ignore = argv[0].startswith("-")
        argv = [argv[0].lstrip("-@+!:"), *argv[1:]]
        r = subprocess.run(argv, capture_output=True, timeout=60, env=SYSTEMD_ENV,
                           stdin=subprocess.DEVNULL, start_new_session=True)
        if r.returncode != 0 and not ignore:
            raise AssertionError(f"{key}={' '.join(argv)}: exit {r.returncode}\n"
                                 f"{r.stderr.decode(errors='replace')}\n{log_tail()}")


def master_pid() -> int | None:
    """The pid in the unit's PIDFile when that process is alive (what systemd tracks)."""
    pidfile = Path(unit_commands()["PIDFile"][0][0])
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    p = Proc.of(pid)
    return pid if p is not None and p.alive() else None


def dpkg(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(["dpkg", *args], timeout=DPKG_TIMEOUT, check=check)


def postern(*args: str) -> subprocess.CompletedProcess:
    return run([POSTERN, *args], env=SYSTEMD_ENV)


def smtp_send(subject: str, rcpt: str) -> None:
    with smtplib.SMTP("127.0.0.1", 25, timeout=WAIT) as s:
        s.sendmail("sender@example.org", [rcpt],
                   f"From: sender@example.org\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\nbody\r\n".encode())


def mailbox_has(user: str, subject: str) -> bool:
    try:
        return f"Subject: {subject}\n" in Path(f"/var/mail/{user}").read_text(errors="replace")
    except OSError:
        return False


def port_25_taken() -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", 25)) == 0


def cleanup_installation() -> None:
    """Stops and purges an installation this module made; kills leftovers by PID."""
    if Path(POSTERN).exists():
        subprocess.run([POSTERN, "stop"], capture_output=True, timeout=60, env=SYSTEMD_ENV,
                       stdin=subprocess.DEVNULL)
    if package_state() != "not-installed":
        subprocess.run(["dpkg", "--purge", "postern"], capture_output=True, timeout=DPKG_TIMEOUT,
                       stdin=subprocess.DEVNULL, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    kill_procs(packaged_procs())


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def debs(postern_bin, tmp_path_factory) -> dict[str, Path]:
    """The two packages (and a second revision of `postern`, for the upgrade)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (installs a Debian package)")
    for tool in ("dpkg", "dpkg-deb", "dpkg-query"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is missing")
    r = subprocess.run(["cargo", "deb", "--version"], capture_output=True, timeout=60)
    if r.returncode != 0:
        pytest.skip("cargo-deb is missing (cargo install cargo-deb --locked --version 3.8.0)")
    started = time.monotonic()
    r = subprocess.run([str(REPO / "scripts" / "package"), "--fast"], cwd=REPO,
                       capture_output=True, text=True, timeout=PACKAGE_TIMEOUT)
    assert r.returncode == 0, f"scripts/package failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    print(f"scripts/package: {time.monotonic() - started:.1f}s")
    out = REPO / "target" / "debian"
    keep = tmp_path_factory.mktemp("debs")
    found = {}
    for name in ("postern", "postern-mta"):
        files = sorted(out.glob(f"{name}_*.deb"))
        assert len(files) == 1, f"{name}: {files}"
        found[name] = Path(shutil.copy2(files[0], keep))
    # Revision 2: the same files under a higher version (what an upgrade installs).
    tree = keep / "rev2"
    run(["dpkg-deb", "-R", str(found["postern"]), str(tree)])
    control = tree / "DEBIAN" / "control"
    version = run(["dpkg-deb", "-f", str(found["postern"]), "Version"]).stdout.decode().strip()
    control.write_text(control.read_text().replace(f"Version: {version}\n", f"Version: {version}+rev2\n"))
    found["rev2"] = keep / "postern_rev2.deb"
    run(["dpkg-deb", "-Zgzip", "-z1", "-b", str(tree), str(found["rev2"])], timeout=120)
    found["version"] = version
    return found


@pytest.fixture(scope="module")
def installed(debs):
    """`postern` installed with dpkg; purged (and every packaged process gone) at the end."""
    state = package_state()
    if state != "not-installed" and not (CONFIG / ".postern-test-install").exists():
        pytest.skip(f"a postern package this test did not install is present ({state})")
    cleanup_installation()
    if port_25_taken():
        pytest.skip("port 25 is taken (another MTA runs)")
    for d in (CONFIG, QUEUE, Path("/var/lib/postern"), Path("/usr/lib/postern")):
        if d.exists():
            pytest.skip(f"{d} exists without the package: not ours to replace")
    postfix_before = run(["/usr/sbin/postconf", "-d", "mail_version"]).stdout
    try:
        dpkg("-i", str(debs["postern"]))
        (CONFIG / ".postern-test-install").touch()
        yield {"postfix_version": postfix_before}
    finally:
        cleanup_installation()
        LOG.unlink(missing_ok=True)
        # None of these existed before this module (else it skipped): a failed test may
        # leave one behind without the package, which would make the next run skip.
        if package_state() == "not-installed":
            for d in (CONFIG, QUEUE, Path("/var/lib/postern"), Path("/usr/lib/postern")):
                shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def mailuser(installed):
    """An ordinary account (useradd), its mailbox /var/mail/NAME removed at the end."""
    name = f"pkgtest{os.getpid()}"
    home = Path(tempfile.mkdtemp(prefix="postern-pkg-home-"))
    home.chmod(0o755)
    for _ in range(20):  # another test's useradd may hold the passwd lock for a moment
        r = subprocess.run(["useradd", "--home-dir", str(home / name), "--create-home",
                            "--shell", "/bin/sh", "--user-group", name],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 10:
            break
        time.sleep(0.5)
    if r.returncode != 0:
        pytest.skip(f"useradd {name}: {r.stderr.strip()}")
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True, timeout=30)
        Path(f"/var/mail/{name}").unlink(missing_ok=True)
        shutil.rmtree(home, ignore_errors=True)


# --------------------------------------------------------------------------- tests

def test_installed_files(installed, debs):
    listed = set(run(["dpkg", "-L", "postern"]).stdout.decode().split("\n"))
    for path in [POSTERN, str(UNIT), "/etc/logrotate.d/postern", "/etc/rsyslog.d/postern.conf",
                 "/usr/share/postern/main.cf.dist", "/usr/share/postern/master.cf.dist",
                 "/usr/share/doc/postern/copyright",
                 *(f"/usr/lib/postern/bin/{c}" for c in COMMANDS)]:
        assert path in listed, f"dpkg -L postern lacks {path}"
    for c in COMMANDS:
        link = Path(f"/usr/lib/postern/bin/{c}")
        assert link.is_symlink() and link.resolve() == Path(POSTERN), link
    for page in ("/usr/share/man/man1/postern.1.gz", "/usr/share/man/man5/postern-main.cf.5.gz"):
        assert page in listed, f"dpkg -L postern lacks {page}"
    # The packaged configuration, installed because /etc/postern did not exist; the
    # packaged master.cf runs SMTP on port 25 and jails what Debian's stock one jails.
    for f in ("main.cf", "master.cf"):
        assert (CONFIG / f).read_bytes() == Path(f"/usr/share/postern/{f}.dist").read_bytes(), f
    master_cf = (CONFIG / "master.cf").read_text().splitlines()
    smtpd = [ln.split() for ln in master_cf if ln.split()[:2] == ["smtp", "inet"]]
    assert smtpd and smtpd[0][4] == "y", smtpd
    # Not dpkg conffiles: a package installed over an existing /etc/postern keeps it.
    conffiles = run(["dpkg-query", "-W", "-f", "${Conffiles}", "postern"]).stdout.decode()
    assert "/etc/postern/" not in conffiles and "/etc/logrotate.d/postern" in conffiles

    postdrop = grp.getgrnam("postdrop").gr_gid
    postfix = pwd.getpwnam("postfix").pw_uid

    def mode(p: Path) -> tuple[int, int, int]:
        st = p.stat()
        return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
    for name in ("postdrop", "postqueue"):
        copy = Path(f"/usr/lib/postern/{name}")
        assert mode(copy) == (0o2755, 0, postdrop), copy
        assert copy.read_bytes() == Path(POSTERN).read_bytes(), f"{copy} is not a copy of {POSTERN}"
    assert mode(QUEUE / "maildrop") == (0o730, postfix, postdrop)
    assert mode(QUEUE / "public") == (0o2710, postfix, postdrop)
    for d in ("incoming", "active", "deferred", "hold", "private"):
        assert mode(QUEUE / d)[:2] == (0o700, postfix), d
    assert mode(QUEUE)[:2] == (0o755, 0)
    assert Path("/var/lib/postern").is_dir() and mode(Path("/var/lib/postern"))[1] == postfix
    run([POSTERN, "check"], env=SYSTEMD_ENV)

    # Debian's Postfix is untouched: its postconf, its sendmail.
    assert run(["/usr/sbin/postconf", "-d", "mail_version"]).stdout == installed["postfix_version"]
    assert run(["dpkg", "-S", "/usr/sbin/sendmail"]).stdout.decode().startswith("postfix:")

    if shutil.which("systemd-analyze"):
        # Also checks that the unit's Documentation=man:postern(1) exists.
        r = run(["systemd-analyze", "verify", str(UNIT)], check=False)
        problems = [ln for ln in r.stderr.decode().splitlines() if "postern" in ln]
        assert r.returncode == 0 and not problems, r.stderr.decode()


def test_unit_start_deliver_reload_stop(installed, mailuser):
    # The one configuration change: a log file, since no syslog daemon runs here.
    LOG.touch(mode=0o600)
    postern("postconf", "-e", f"maillog_file = {LOG}")
    user = mailuser.pw_name
    systemd_exec("ExecStart")
    pid = wait_for(master_pid, "the unit's PIDFile naming a live master")
    assert argv0(pid).endswith("master")

    smtp_send("over-smtp", f"{user}@localhost")
    wait_for(lambda: mailbox_has(user, "over-smtp"), "SMTP mail in /var/mail/" + user)
    box = Path(f"/var/mail/{user}").stat()
    assert (box.st_uid, stat.S_IMODE(box.st_mode) & 0o077) == (mailuser.pw_uid, 0), box

    # smtpd (chroot y in the packaged master.cf) runs in the jail: the queue directory.
    smtpds = [p.pid for p in packaged_procs() if argv0(p.pid) == "smtpd"]
    assert smtpds, "no smtpd process after a session"
    for p in smtpds:
        assert os.readlink(f"/proc/{p}/root") == str(QUEUE), f"smtpd {p} is not chrooted"

    systemd_exec("ExecReload")
    time.sleep(0.5)
    assert master_pid() == pid, "master changed or died on reload"

    # An ordinary user submits with the packaged sendmail (through the set-gid postdrop).
    msg = f"From: {user}@localhost\nSubject: from-sendmail\n\nbody\n".encode()
    r = subprocess.run(["setpriv", f"--reuid={mailuser.pw_uid}", f"--regid={mailuser.pw_gid}",
                        "--init-groups", "--", "/usr/lib/postern/bin/sendmail", f"{user}@localhost"],
                       input=msg, capture_output=True, timeout=30, start_new_session=True,
                       env={"PATH": "/usr/bin:/bin", "HOME": mailuser.pw_dir, "USER": user,
                            "LOGNAME": user}, cwd=mailuser.pw_dir)
    assert r.returncode == 0, r.stderr.decode()
    wait_for(lambda: mailbox_has(user, "from-sendmail"), "sendmail mail in /var/mail/" + user)

    procs = packaged_procs()
    systemd_exec("ExecStop")
    wait_for(lambda: not packaged_procs(), "no packaged process after ExecStop", timeout=10)
    assert not any(p.alive() for p in procs)


def test_upgrade_keeps_configuration_and_queue(installed, debs, mailuser):
    user = mailuser.pw_name
    postern("postconf", "-e", "smtpd_banner = $myhostname ESMTP kept-by-upgrade")
    edited = (CONFIG / "main.cf").read_text()
    # A message waiting in the queue while Postern is stopped.
    run([POSTERN, "sendmail", f"{user}@localhost"], env=SYSTEMD_ENV,
        input=b"Subject: queued-over-upgrade\n\nbody\n")
    queued = sorted(p.name for p in (QUEUE / "maildrop").iterdir())
    assert queued, "sendmail left nothing in maildrop"
    # Mark the old set-gid copy (inode numbers may be reused: the mark tells it apart).
    os.utime("/usr/lib/postern/postdrop", (0, 0))

    dpkg("-i", str(debs["rev2"]))
    assert installed_version() == debs["version"] + "+rev2"
    assert (CONFIG / "main.cf").read_text() == edited, "the upgrade changed main.cf"
    assert sorted(p.name for p in (QUEUE / "maildrop").iterdir()) == queued
    st = os.stat("/usr/lib/postern/postdrop")
    assert stat.S_IMODE(st.st_mode) == 0o2755 and st.st_mtime != 0, "set-gid copy not renewed"
    assert not packaged_procs(), "the upgrade started a Postern that was not running"

    # The queued message is delivered once Postern runs again.
    systemd_exec("ExecStart")
    wait_for(lambda: mailbox_has(user, "queued-over-upgrade"), "the queued message delivered")
    old_master = master_pid()
    # Upgrading a running Postern restarts it with the new binary (no old process left).
    dpkg("-i", str(debs["rev2"]))
    new_master = wait_for(master_pid, "master running again after the upgrade")
    assert new_master != old_master
    assert not any(os.readlink(f"/proc/{p.pid}/exe").endswith("(deleted)") for p in packaged_procs())
    systemd_exec("ExecStop")
    wait_for(lambda: not packaged_procs(), "no packaged process after ExecStop", timeout=10)


def test_remove_keeps_configuration_reinstall_keeps_it(installed, debs):
    edited = (CONFIG / "main.cf").read_text()
    assert "kept-by-upgrade" in edited
    dpkg("-r", "postern")
    assert package_state() == "config-files"
    assert not Path(POSTERN).exists()
    assert not Path("/usr/lib/postern/postdrop").exists(), "set-gid copy left after removal"
    assert not Path("/usr/lib/postern/postqueue").exists(), "set-gid copy left after removal"
    assert (CONFIG / "main.cf").read_text() == edited and (QUEUE / "maildrop").is_dir()
    # The administrator replaces master.cf meanwhile; installing again keeps both files.
    admin_master = (CONFIG / "master.cf").read_text() + "# the administrator's line\n"
    (CONFIG / "master.cf").write_text(admin_master)
    dpkg("-i", str(debs["rev2"]))
    assert (CONFIG / "main.cf").read_text() == edited
    assert (CONFIG / "master.cf").read_text() == admin_master
    assert stat.S_IMODE(os.stat("/usr/lib/postern/postdrop").st_mode) == 0o2755


def test_purge_of_running_postern(installed):
    systemd_exec("ExecStart")
    wait_for(master_pid, "master running")
    procs = packaged_procs()
    assert procs
    dpkg("--purge", "postern")
    assert package_state() == "not-installed"
    assert not packaged_procs(), [p.describe() for p in packaged_procs()]
    assert not any(p.alive() for p in procs)
    for d in (CONFIG, QUEUE, Path("/var/lib/postern"), Path("/usr/lib/postern")):
        assert not d.exists(), f"{d} left after purge"
    pwd.getpwnam("postfix")  # the shared account stays
    grp.getgrnam("postdrop")
    run(["/usr/sbin/postconf", "-d", "mail_version"])


def test_fresh_install_over_an_administrators_configuration(installed, debs):
    # Never installed (purged), but the administrator has written /etc/postern/main.cf
    # (say, copied from Postfix): installing keeps it and adds only what is missing.
    assert package_state() == "not-installed"
    CONFIG.mkdir(mode=0o755)
    admin_main = "# the administrator's main.cf\ncompatibility_level = 3.7\n" \
                 "smtpd_banner = $myhostname ESMTP administrator\n"
    (CONFIG / "main.cf").write_text(admin_main)
    dpkg("-i", str(debs["postern"]))
    assert (CONFIG / "main.cf").read_text() == admin_main
    assert (CONFIG / "master.cf").read_bytes() == Path("/usr/share/postern/master.cf.dist").read_bytes()
    assert stat.S_IMODE(os.stat("/usr/lib/postern/postdrop").st_mode) == 0o2755
    dpkg("--purge", "postern")
    assert not CONFIG.exists()


def test_mta_package(debs):
    deb = str(debs["postern-mta"])
    fields = {f: run(["dpkg-deb", "-f", deb, f]).stdout.decode().strip()
              for f in ("Package", "Depends", "Provides", "Conflicts", "Replaces")}
    assert fields["Package"] == "postern-mta"
    assert fields["Depends"].startswith("postern")
    for f in ("Provides", "Conflicts", "Replaces"):
        assert fields[f] == "mail-transport-agent", fields
    links = {}
    for line in run(["dpkg-deb", "-c", deb]).stdout.decode().splitlines():
        parts = line.split()
        if parts[0].startswith("l"):
            links[parts[5].lstrip(".")] = parts[7]
    assert set(links) == {"/usr/sbin/sendmail", "/usr/lib/sendmail", "/usr/bin/mailq",
                          "/usr/bin/newaliases", "/usr/sbin/newaliases"}, links
    for path, target in links.items():
        assert os.path.normpath(Path(path).parent / target) == POSTERN, (path, target)
    # Beside Postfix (another mail-transport-agent) dpkg refuses it.
    if run(["dpkg-query", "-W", "-f", "${Status}", "postfix"], check=False).stdout.endswith(b" installed"):
        r = dpkg("--dry-run", "-i", deb, check=False)
        assert r.returncode != 0 and b"conflicting packages" in r.stderr, r.stderr.decode()
