"""test_apparmor.py -- the AppArmor profiles of dist/apparmor/ (docs/security.md, "AppArmor").

Always (needs `apparmor_parser`, Debian package `apparmor`; the kernel need not have AppArmor):
  * every profile file parses and compiles (`apparmor_parser -Q -K`: no kernel load, no cache),
    against a fixed feature set when the package ships one (Debian's
    /usr/share/apparmor-features/features), with an empty parser configuration;
  * every daemon name master can start (the `daemon()` table of crates/postern/src/main.rs,
    read at test time) has a profile postern-NAME, and postern-master's change_profile rule
    lists exactly those profiles (master's exec request for any other would be refused);
  * sys_chroot exactly in the profiles of the daemons a chroot jail may hold (the JAILABLE list
    of crates/postern-control/src/jail.rs);
  * the commands profile `postern` attaches to the one executable and may move master into
    postern-master; the set-gid copies have their own path-attached profiles;
  * the private profile family the enforce test loads (names postern-* -> posterntNNN-*, paths
    of a test instance) parses too.

Where the kernel has AppArmor and the test runs as root: the profiles are loaded in enforce mode
as a private family (`posterntPID`, attached to a copy of the binary inside the test's instance,
so no other test's processes are confined), a root instance is started with that copy, mail
flows over SMTP and through sendmail to a local mailbox, every daemon runs in its own profile
(/proc/PID/attr/apparmor/current), and the kernel log carries no DENIED line for the family.
The profiles are removed at the end. Without AppArmor in the kernel (containers, this CI) the
case is skipped with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from postern import REPO, Instance

DIST = REPO / "dist" / "apparmor"
FEATURES = Path("/usr/share/apparmor-features/features")
PARSER = shutil.which("apparmor_parser") or (
    "/usr/sbin/apparmor_parser" if Path("/usr/sbin/apparmor_parser").exists() else None)
PARSE_TIMEOUT = 60

needs_parser = pytest.mark.skipif(PARSER is None, reason="apparmor_parser not installed "
                                  "(Debian package apparmor)")


def profile_files(root: Path = DIST) -> list[Path]:
    """The profile files: every top-level file (abstractions/ and tunables/ are included)."""
    return sorted(p for p in root.iterdir() if p.is_file())


def parse(files: list[Path], include: Path, *extra: str) -> subprocess.CompletedProcess:
    """apparmor_parser without loading: parse and compile, no cache, no system config."""
    argv = [PARSER, "--config-file=/dev/null", "-Q", "-K", "-I", str(include)]
    if FEATURES.exists():
        argv += ["-M", str(FEATURES)]
    return subprocess.run(argv + list(extra) + [str(f) for f in files], capture_output=True,
                          text=True, timeout=PARSE_TIMEOUT)


def names(files: list[Path], include: Path) -> list[str]:
    r = subprocess.run([PARSER, "--config-file=/dev/null", "-N", "-I", str(include),
                        *map(str, files)], capture_output=True, text=True, timeout=PARSE_TIMEOUT)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def master_daemons() -> list[str]:
    """The names crates/postern/src/main.rs `daemon()` dispatches (what master can start)."""
    src = (REPO / "crates" / "postern" / "src" / "main.rs").read_text()
    m = re.search(r"fn daemon\(name: &str\)[^{]*\{(.*?)\n\}", src, re.S)
    assert m, "fn daemon() not found in crates/postern/src/main.rs"
    found = re.findall(r'"([a-z][a-z0-9_-]*)"\s*(?:\|[^=]*)?=>', m.group(1))
    # `"a" | "b" => ...` arms: every quoted name before a `=>`.
    for arm in re.findall(r'((?:"[a-z0-9_-]+"\s*\|\s*)+"[a-z0-9_-]+")\s*=>', m.group(1)):
        found += re.findall(r'"([a-z0-9_-]+)"', arm)
    out = sorted(set(found))
    assert "smtpd" in out and "master" in out, out
    return out


# A file rule with an exec permission (ix, Px, Cx -> child, ...).
EXEC_RULE = r"^\s*[^#\n]*\s[rwlkmaiPpCcUu]*x\s*(->[^,]*)?,\s*$"

# A profile name `postern` or `postern-…` (not a path, a variable or an include's file name).
NAME_RE = re.compile(r"(?<![/\w@{.<-])postern(?![_\w.])")


def private_family(dest: Path, family: str, paths: dict[str, str]) -> Path:
    """A copy of dist/apparmor in `dest` whose profiles are `family`, `family-NAME`, whose
    abstractions and tunables are private (`abstractions/family`…) and whose tunables name
    `paths` (tunable name without `postern_` -> value)."""
    shutil.copytree(DIST, dest)
    for p in sorted(dest.rglob("*")):
        if not p.is_file():
            continue
        text = p.read_text()
        text = text.replace("<abstractions/postern", f"<abstractions/{family}")
        text = text.replace("<tunables/postern", f"<tunables/{family}")
        text = text.replace("<local/postern", f"<local/{family}")
        text = NAME_RE.sub(family, text)
        if p.parent.name == "tunables":
            for key, value in paths.items():
                text, n = re.subn(rf"^@\{{postern_{key}\}}=.*$", f"@{{postern_{key}}}={value}",
                                  text, flags=re.M)
                assert n == 1, key
        p.write_text(text)
        if p.name.startswith("postern"):
            p.rename(p.with_name(p.name.replace("postern", family, 1)))
    return dest


# --------------------------------------------------------------------------- parsing

@needs_parser
def test_every_profile_parses_and_compiles():
    files = profile_files()
    assert len(files) >= 20, files
    r = parse(files, DIST)
    assert r.returncode == 0, r.stderr
    assert "error" not in r.stderr.lower(), r.stderr
    for f in files:
        text = f.read_text()
        assert text.startswith("# "), f"{f.name}: no header comment"
        assert "abi <abi/3.0>," in text, f.name
        assert "include if exists <local/" in text, f"{f.name}: no local override include"


@needs_parser
def test_every_daemon_has_a_profile_and_master_may_enter_exactly_those():
    daemons = [d for d in master_daemons() if d != "master"]
    got = names(profile_files(), DIST)
    for d in daemons:
        assert f"postern-{d}" in got, f"daemon {d} has no profile postern-{d}"
    assert "postern-master" in got and "postern" in got
    master = (DIST / "postern-master").read_text()
    m = re.search(r"^\s*change_profile -> postern-\{([^}]*)\},", master, re.M)
    assert m, "postern-master: no change_profile rule"
    assert sorted(m.group(1).split(",")) == sorted(daemons)
    # Nothing else in master's profile executes anything.
    assert not re.search(EXEC_RULE, master, re.M), master
    # Every daemon profile is reached by master's exec request, never by a path.
    for d in daemons:
        text = (DIST / f"postern-{d}").read_text()
        assert re.search(rf"^profile postern-{d} flags=", text, re.M), d
        assert "include <abstractions/postern>" in text, d


def test_sys_chroot_exactly_for_the_daemons_a_jail_may_hold():
    """sys_chroot only where master.cf's chroot column may say y (postern-control's jail
    module lists them; `postern check` refuses y for the others)."""
    jail = REPO / "crates" / "postern-control" / "src" / "jail.rs"
    if not jail.exists():
        pytest.skip("crates/postern-control/src/jail.rs not present")
    m = re.search(r"const JAILABLE: &\[&str\] = &\[(.*?)\];", jail.read_text(), re.S)
    assert m, "JAILABLE not found in jail.rs"
    jailable = set(re.findall(r'"([a-z]+)"', m.group(1)))
    for d in master_daemons():
        if d == "master":
            continue
        text = re.sub(r"#.*", "", (DIST / f"postern-{d}").read_text())
        has = re.search(r"^\s*capability sys_chroot,", text, re.M) is not None
        assert has == (d in jailable), f"postern-{d}: sys_chroot {has}, jailable {d in jailable}"


@needs_parser
def test_commands_and_setgid_copies_attach_by_path():
    cmds = (DIST / "usr.sbin.postern").read_text()
    assert re.search(r"^profile postern @\{postern_exe\} ", cmds, re.M)
    assert re.search(r"^\s*change_profile -> postern-master,", cmds, re.M)
    for name in ("postdrop", "postqueue"):
        text = (DIST / f"usr.lib.postern.{name}").read_text()
        assert re.search(rf"^profile postern-{name} @\{{postern_libexec\}}/{name} ", text, re.M)
        assert "capability" not in re.sub(r"#.*", "", text), f"{name} must gain no capability"
        assert f"@{{postern_libexec}}/{name} Px -> postern-{name}," in cmds
    tun = (DIST / "tunables" / "postern").read_text()
    for key, value in (("exe", "/usr/sbin/postern"), ("libexec", "/usr/lib/postern"),
                       ("config", "/etc/postern"), ("queue", "/var/spool/postern"),
                       ("data", "/var/lib/postern")):
        assert f"@{{postern_{key}}}={value}\n" in tun, key


@needs_parser
def test_private_family_parses(tmp_path):
    fam = f"posternt{os.getpid()}"
    root = tmp_path / "inst"
    d = private_family(tmp_path / "aa", fam, {
        "exe": f"{root}/sbin/postern", "libexec": f"{root}/bin", "config": str(root),
        "queue": f"{root}/queue", "data": f"{root}/data", "maillog": f"{root}/log/*",
        "spool": f"{root}/mail", "virtual": f"{root}/mail"})
    files = profile_files(d)
    r = parse(files, d)
    assert r.returncode == 0, r.stderr
    got = names(files, d)
    assert fam in got and f"{fam}-master" in got and f"{fam}-smtpd" in got, got
    assert not [n for n in got if n.split("-")[0].split("//")[0] != fam], got
    text = (d / f"{fam}-master").read_text()
    assert f"change_profile -> {fam}-{{" in text
    assert f"<abstractions/{fam}>" in (d / f"{fam}-smtpd").read_text()


# --------------------------------------------------------------------------- enforce mode

def apparmor_unavailable() -> str | None:
    if PARSER is None:
        return "apparmor_parser not installed"
    if os.geteuid() != 0:
        return "loading profiles needs root"
    try:
        enabled = Path("/sys/module/apparmor/parameters/enabled").read_text().strip()
    except OSError:
        return "the kernel has no AppArmor (/sys/module/apparmor absent)"
    if enabled != "Y":
        return f"AppArmor is not enabled in this kernel (enabled={enabled})"
    if not Path("/sys/kernel/security/apparmor/profiles").exists():
        return "securityfs with AppArmor's interface is not mounted"
    return None


def kernel_log() -> str:
    text = ""
    for argv in (["dmesg"], ["journalctl", "-k", "-q", "--no-pager", "-b"]):
        try:
            text += subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
    audit = Path("/var/log/audit/audit.log")
    if audit.exists():
        text += audit.read_text(errors="replace")
    return text


def label(pid: int) -> str:
    for p in (f"/proc/{pid}/attr/apparmor/current", f"/proc/{pid}/attr/current"):
        try:
            return Path(p).read_text().strip("\0\n ")
        except OSError:
            continue
    return ""


def test_enforce_mode_mail_flow_without_denials(postern_bin, tmp_path):
    why = apparmor_unavailable()
    if why:
        pytest.skip(why)
    fam = f"posternt{os.getpid()}"
    inst = None
    loaded: list[Path] = []
    try:
        inst = Instance.create(postern_bin, user=None, init=False)
        # A copy of the binary inside the instance: only this instance's processes attach.
        sbin = inst.base / "sbin"
        sbin.mkdir()
        copy = sbin / "postern"
        shutil.copy2(postern_bin, copy)
        inst.binary = copy
        inst.init()
        root = inst.root
        d = private_family(tmp_path / "aa", fam, {
            "exe": str(copy), "libexec": f"{root}/bin", "config": str(root),
            "queue": f"{root}/queue", "data": f"{root}/data", "maillog": f"{root}/log/*",
            "spool": f"{root}/mail", "virtual": f"{root}/mail"})
        before = set(kernel_log().splitlines())
        files = profile_files(d)
        r = subprocess.run([PARSER, "-r", "-K", "-I", str(d), *map(str, files)],
                           capture_output=True, text=True, timeout=PARSE_TIMEOUT)
        assert r.returncode == 0, r.stderr
        loaded = files

        inst.start()
        master = inst.master_pid()
        assert master and label(master) == f"{fam}-master (enforce)", label(master or 0)
        inst.sendmail(["root@localhost"], b"Subject: via sendmail\n\nbody\n")
        with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as s:
            s.sendmail("a@example.com", ["root@localhost"], b"Subject: via smtp\n\nbody\n")
        inst.wait_for_mail("root", count=2)
        # Every daemon runs in its own profile.
        seen = {}
        for p in inst.processes():
            try:
                argv0 = Path(f"/proc/{p.pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            except OSError:
                continue
            seen[Path(argv0).name] = label(p.pid)
        for name in ("smtpd", "cleanup", "qmgr", "pickup", "local"):
            if name in seen:
                assert seen[name] == f"{fam}-{name} (enforce)", (name, seen)
        assert "qmgr" in seen, seen
        inst.stop()
        time.sleep(0.5)
        denials = [line for line in kernel_log().splitlines() if line not in before
                   and 'apparmor="DENIED"' in line and f'profile="{fam}' in line]
        assert not denials, "\n".join(denials)
    finally:
        if inst is not None:
            inst.close()
        if loaded:
            subprocess.run([PARSER, "-R", "-K", "-I", str(tmp_path / "aa"), *map(str, loaded)],
                           capture_output=True, timeout=PARSE_TIMEOUT)
