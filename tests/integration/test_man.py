"""test_man.py -- the manual: `postern man DIR`, `postern help [NAME]` and `--help`.

The pages come from one source (crates/postern-help/pages) rendered two ways; these
tests drive the real binary: `postern man DIR` writes every page under man1/man5/man8,
each page formats without a groff warning (when groff is installed; Debian's
groff-base), `man -l` shows it, `sendmail --help` is exactly the SYNOPSIS and OPTIONS
sections of `postern help sendmail`, `postern help NAME` exits 0, an unknown page exits
64 with one line on stderr, and `--help` is special only as the first argument (other
flags keep their command's meaning). No instance is started; every command is bounded.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

TIMEOUT = 20


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("MAIL_CONFIG", None)
    env.update(kw.pop("env", {}))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=env, **kw)


def sections(text: str) -> dict[str, str]:
    """Plain page text split at its section titles (capital lines at column 0)."""
    out: dict[str, str] = {}
    title = None
    for line in text.splitlines(keepends=True):
        if re.fullmatch(r"[A-Z][A-Z .]*\n", line):
            title = line.strip()
            out[title] = line
        elif title is not None:
            out[title] += line
    return out


@pytest.fixture(scope="module")
def man_dir(postern_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("man")
    r = run([str(postern_bin), "man", str(d)])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""
    return d


def test_man_writes_every_page(postern_bin: Path, man_dir: Path) -> None:
    files = sorted(p.relative_to(man_dir).as_posix() for p in man_dir.rglob("*") if p.is_file())
    for want in ["man1/postern.1", "man1/postern-sendmail.1", "man1/postern-postqueue.1",
                 "man1/postern-postconf.1", "man5/postern-main.cf.5", "man5/postern-master.cf.5",
                 "man8/postern-master.8", "man8/postern-smtpd.8", "man8/postern-qmgr.8",
                 "man8/postern-local.8"]:
        assert want in files, files
    for f in files:
        sect = f.split("/")[0][3:]
        assert f.endswith("." + sect), f
        assert (man_dir / f).read_text().startswith(".TH \""), f
    # One file per page that `postern help` lists.
    index = run([str(postern_bin), "help"])
    assert index.returncode == 0
    listed = re.findall(r"^  (\S+)\((\d)\)", index.stdout, re.M)
    assert sorted(f"man{s}/{n}.{s}" for n, s in listed) == files
    # No page name clashes with what Debian's Postfix installs: all are postern*.
    assert all(Path(f).name.startswith("postern") for f in files)


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed (groff-base)")
def test_pages_format_without_warnings(man_dir: Path) -> None:
    for page in sorted(man_dir.rglob("*.[158]")):
        r = run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)])
        assert r.returncode == 0 and r.stderr == "", f"{page.name}: {r.stderr}"


@pytest.mark.skipif(shutil.which("man") is None, reason="man is not installed (man-db)")
def test_man_shows_a_page(man_dir: Path) -> None:
    r = run(["man", "-l", str(man_dir / "man8" / "postern-smtpd.8")],
            env={"MANWIDTH": "80", "MANPAGER": "cat", "PAGER": "cat"})
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr
    assert "postern-smtpd - the SMTP server" in r.stdout
    assert "smtpd_banner" in r.stdout


def test_sendmail_help_is_the_page_synopsis_and_options(postern_bin: Path,
                                                        tmp_path: Path) -> None:
    page = run([str(postern_bin), "help", "sendmail"])
    assert page.returncode == 0 and page.stdout.startswith("POSTERN-SENDMAIL(1)")
    secs = sections(page.stdout)
    want = secs["SYNOPSIS"] + secs["OPTIONS"]
    link = tmp_path / "sendmail"
    link.symlink_to(postern_bin)
    for cmd in ([str(postern_bin), "sendmail", "--help"], [str(link), "--help"]):
        r = run(cmd)
        assert r.returncode == 0 and r.stderr == "", (cmd, r.stderr)
        body, pointer = r.stdout.rsplit("The whole manual page:", 1)
        assert body == want, cmd
        assert "man 1 postern-sendmail" in pointer


def test_help_for_commands_and_verbs(postern_bin: Path) -> None:
    r = run([str(postern_bin), "help", "postqueue"])
    assert r.returncode == 0 and r.stdout.startswith("POSTERN-POSTQUEUE(1)\n"), r.stderr
    assert "\nOPTIONS\n" in r.stdout and "\nSEE ALSO\n" in r.stdout
    for name, head in [("main.cf", "POSTERN-MAIN.CF(5)"), ("smtpd", "POSTERN-SMTPD(8)"),
                       ("mailq", "POSTERN-SENDMAIL(1)"), ("postern-master.8", "POSTERN-MASTER(8)")]:
        r = run([str(postern_bin), "help", name])
        assert r.returncode == 0 and r.stdout.startswith(head + "\n"), name
    for cmd in (["postqueue", "--help"], ["postconf", "--help"], ["postsuper", "--help"],
                ["start", "--help"], ["check", "--help"], ["--help"]):
        r = run([str(postern_bin), *cmd])
        assert r.returncode == 0 and r.stdout.startswith("SYNOPSIS\n"), (cmd, r.stderr)
    r = run([str(postern_bin), "start", "--help"])
    assert "\n    start\n" in r.stdout and "\n    stop\n" not in r.stdout


def test_unknown_page_and_usage(postern_bin: Path) -> None:
    r = run([str(postern_bin), "help", "no-such-page"])
    assert r.returncode == 64 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "no-such-page" in r.stderr, r.stderr
    r = run([str(postern_bin)])
    assert r.returncode == 64 and r.stderr.startswith("usage: postern "), r.stderr
    r = run([str(postern_bin), "man"])
    assert r.returncode == 64


def test_help_only_as_first_argument(postern_bin: Path, tmp_path: Path) -> None:
    # postconf's -h keeps its meaning (value without "name = ").
    r = run([str(postern_bin), "postconf", "-c", str(tmp_path), "-d", "-h", "mail_owner"])
    assert r.returncode == 0 and r.stdout == "postfix\n", r.stderr
    # --help after other arguments is the command's business, not the manual's.
    r = run([str(postern_bin), "postqueue", "-p", "--help"])
    assert "SYNOPSIS" not in r.stdout
    assert r.returncode != 0
