"""Lookup tables: Postern's postmap/postalias against Debian's, proxy: tables, and
daemons restarting when a table changes.

The differential tests build the same source with Postern's `postmap` (run as
`postern postmap ...`) and Debian's `/usr/sbin/postmap` (each into its own directory:
`hash:` is Berkeley DB in Postfix and Postern's own cdb-based format here), then ask both
`postmap -q -` for a fixed list of tricky keys plus seeded random ones; every answer must
agree. `cdb:` and `lmdb:` files are also read across: Postern queries Debian's files and
Debian queries Postern's. Skipped when Debian's postmap (or a map type) is absent.
"""

from __future__ import annotations

import os
import random
import shutil
import smtplib
import subprocess
import time
from pathlib import Path

import pytest

DEB_POSTMAP = "/usr/sbin/postmap"
DEB_POSTALIAS = "/usr/sbin/postalias"
TIMEOUT = 30

pytestmark = pytest.mark.skipif(not os.path.exists(DEB_POSTMAP), reason="Debian postmap not installed")


# --------------------------------------------------------------------------- helpers

@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A directory with an empty main.cf (both postmaps need one) and pf/, pt/ subdirs."""
    (tmp_path / "main.cf").write_text("")
    for d in ("pf", "pt"):
        (tmp_path / d).mkdir()
    return tmp_path


def run(cmd: list[str], work: Path, stdin: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAIL_")}
    env["MAIL_CONFIG"] = str(work)
    env["LC_ALL"] = "C"
    return subprocess.run(cmd, input=stdin.encode(), capture_output=True, timeout=TIMEOUT, env=env,
                          cwd=work)


def ours(postern_bin: Path, work: Path, *args: str, stdin: str = "", prog: str = "postmap"):
    return run([str(postern_bin), prog, "-c", str(work), *args], work, stdin)


def theirs(work: Path, *args: str, stdin: str = "", prog: str = DEB_POSTMAP):
    return run([prog, "-c", str(work), *args], work, stdin)


def has_type(work: Path, kind: str) -> bool:
    r = subprocess.run(["/usr/sbin/postconf", "-c", str(work), "-m"], capture_output=True, text=True,
                       timeout=TIMEOUT)
    return kind in r.stdout.split()


def answers(r: subprocess.CompletedProcess, sep: str = "\t") -> dict[str, str]:
    out = {}
    for line in r.stdout.decode(errors="replace").splitlines():
        if sep in line:
            k, v = line.split(sep, 1)
            out.setdefault(k, v)
    return out


FIXED_SOURCE = """\
# comment
Foo@Example.COM          foo-value
user+ext@example.com     plus-value
user@example.com         bare-value
example.com              domain-value
.sub.example.com         dot-sub
sub.example.com          sub-value
ÄÖÜ@Example.COM          umlaut
straße                   strasse
"quoted key"@example.com quoted-value
multi                    first part
   continued part
dup                      first
dup                      second
{long}                   long-value
tabbed\tvalue with   inner   spaces
""".replace("{long}", "L" * 300)

FIXED_KEYS = [
    "foo@example.com", "FOO@EXAMPLE.COM", "Foo@Example.COM", "user+ext@example.com",
    "user@example.com", "USER+EXT@EXAMPLE.COM", "example.com", "sub.example.com",
    ".sub.example.com", "a.sub.example.com", "ÄÖÜ@example.com", "äöü@example.com",
    "straße", "STRAßE", "STRASSE", '"quoted key"@example.com', "quoted key@example.com",
    "multi", "dup", "L" * 300, "l" * 300, "L" * 299, "tabbed", " tabbed", "tabbed ",
    "nothing", "", "@", "x" * 1000,
]


def random_keys(n: int = 200, seed: int = 5) -> list[str]:
    rnd = random.Random(seed)
    parts = ["foo", "user", "ext", "example", "com", "sub", "Foo", "USER", "+", "@", ".", "-",
             "dup", "multi", "ä", "ß", "10", "192", "168", "1", "0", "straße", "L"]
    return ["".join(rnd.choice(parts) for _ in range(rnd.randint(1, 6))) for _ in range(n)]


def compare(ours_r, theirs_r, what: str) -> None:
    a, b = answers(ours_r), answers(theirs_r)
    assert a == b, f"{what}: Postern and Postfix disagree\nonly ours: " \
        f"{ {k: v for k, v in a.items() if b.get(k) != v} }\nonly theirs: " \
        f"{ {k: v for k, v in b.items() if a.get(k) != v} }\nstderr: {ours_r.stderr!r}"


# --------------------------------------------------------------------------- differential lookups

@pytest.mark.parametrize("kind", ["hash", "cdb", "lmdb", "texthash"])
def test_fixed_string_tables_agree(postern_bin, work, kind):
    if kind != "texthash" and not has_type(work, kind):
        pytest.skip(f"Debian postmap lacks {kind}")
    for d in ("pf", "pt"):
        (work / d / "src").write_text(FIXED_SOURCE)
    if kind != "texthash":
        r = theirs(work, f"{kind}:pf/src")
        assert r.returncode == 0, r.stderr
        r = ours(postern_bin, work, f"{kind}:pt/src")
        assert r.returncode == 0, r.stderr
        assert b'duplicate entry: "dup"' in r.stderr
    keys = "\n".join(FIXED_KEYS + random_keys()) + "\n"
    compare(ours(postern_bin, work, "-q", "-", f"{kind}:pt/src", stdin=keys),
            theirs(work, "-q", "-", f"{kind}:pf/src", stdin=keys), kind)
    if kind in ("cdb", "lmdb"):
        # Interop both ways: each side reads the other's file.
        compare(ours(postern_bin, work, "-q", "-", f"{kind}:pf/src", stdin=keys),
                theirs(work, "-q", "-", f"{kind}:pf/src", stdin=keys), f"Postern reads Debian's {kind}")
        compare(theirs(work, "-q", "-", f"{kind}:pt/src", stdin=keys),
                theirs(work, "-q", "-", f"{kind}:pf/src", stdin=keys), f"Debian reads Postern's {kind}")


PATTERN_SOURCES = {
    "regexp": """\
/^user\\+(.*)@example\\.com$/   plus $1
/^([^@]+)@sub\\.example\\.com$/ sub-user $1
/^FOO@/i                        foo-insensitive
/^Case@/                        case-sensitive
if /example/
/^a(b|bc)d$/                    inner
endif
!/example/                      negated
""",
    "pcre": """\
/^user\\+(.*)@example\\.com$/   plus $1
/^(?<u>[^@]+)@sub\\.example\\.com$/ sub-user $1
/^FOO@/i                        foo-insensitive
/^Case@/                        case-sensitive
/^\\d+\\.\\d+$/                 numeric
/ä+/                            umlaut
""",
    "cidr": """\
192.168.1.0/24     net24
192.168.1.128/25   net25-after
10.0.0.1           host
2001:db8::/32      v6net
2001:db8::1        v6host-after
0.0.0.0/0          any4
""",
}

PATTERN_KEYS = [
    "user+ext@example.com", "user+@example.com", "bob@sub.example.com", "FOO@x", "foo@x",
    "Case@x", "case@x", "abd", "abcd", "exampleabd", "nothing", "123.45", "ää", "",
    "192.168.1.1", "192.168.1.200", "10.0.0.1", "10.0.0.2", "2001:db8::1", "2001:db8::2",
    "2001:DB8::1", "::1", "1.2.3.4", "not-an-ip", "192.168.001.1",
]


@pytest.mark.parametrize("kind", ["regexp", "pcre", "cidr"])
def test_pattern_tables_agree(postern_bin, work, kind):
    if not has_type(work, kind):
        pytest.skip(f"Debian postmap lacks {kind}")
    (work / "src").write_text(PATTERN_SOURCES[kind])
    keys = "\n".join(PATTERN_KEYS + random_keys(seed=7)) + "\n"
    compare(ours(postern_bin, work, "-q", "-", f"{kind}:src", stdin=keys),
            theirs(work, "-q", "-", f"{kind}:src", stdin=keys), kind)


def test_inline_agrees(postern_bin, work):
    spec = "inline:{ Foo=Bar, { key two = value with spaces }, x=1, x=2 }"
    keys = "foo\nFOO\nkey two\nx\nnone\n"
    compare(ours(postern_bin, work, "-q", "-", spec, stdin=keys),
            theirs(work, "-q", "-", spec, stdin=keys), "inline")


# --------------------------------------------------------------------------- postalias

ALIASES = """\
# aliases(5)
root: a, b
"quoted name": x
  , y
user: :include:/etc/x, |"/usr/bin/prog -a", /var/file
spaced:   several    words
Upper: z
commas: x ,  y ,z
mixed: "Joe Q" <joe@x>, (comment) foo
semi: x; y
root: dup
"""


def test_postalias_agrees(postern_bin, work):
    for d in ("pf", "pt"):
        (work / d / "aliases").write_text(ALIASES)
    r = theirs(work, "hash:pf/aliases", prog=DEB_POSTALIAS)
    assert r.returncode == 0, r.stderr
    r = ours(postern_bin, work, "hash:pt/aliases", prog="postalias")
    assert r.returncode == 0, r.stderr
    assert b'postalias: warning: pt/aliases.db: duplicate entry: "root"' in r.stderr
    a = answers(ours(postern_bin, work, "-s", "hash:pt/aliases", prog="postalias"), ":\t")
    b = answers(theirs(work, "-s", "hash:pf/aliases", prog=DEB_POSTALIAS), ":\t")
    for d in (a, b):
        d.pop("YP_LAST_MODIFIED", None)
    assert a == b
    assert a["@"] == "@" and a["quoted name"] == "x, y" and a["user"].startswith(":include:/etc/x")
    keys = "root\nROOT\nquoted name\nupper\nnone\n@\n"
    compare(ours(postern_bin, work, "-q", "-", "hash:pt/aliases", prog="postalias", stdin=keys),
            theirs(work, "-q", "-", "hash:pf/aliases", prog=DEB_POSTALIAS, stdin=keys), "postalias -q")


# --------------------------------------------------------------------------- -s, -d, -i

def test_sequence_delete_incremental_agree(postern_bin, work):
    src = "a 1\nB 2\nc 3\n"
    for d in ("pf", "pt"):
        (work / d / "t").write_text(src)
    assert theirs(work, "hash:pf/t").returncode == 0
    assert ours(postern_bin, work, "hash:pt/t").returncode == 0

    def both(*args, stdin=""):
        return (ours(postern_bin, work, *args[:-1], args[-1].replace("pf/", "pt/"), stdin=stdin),
                theirs(work, *args, stdin=stdin))

    o, t = both("-s", "hash:pf/t")
    assert sorted(o.stdout.splitlines()) == sorted(t.stdout.splitlines()) == [b"a\t1", b"b\t2", b"c\t3"]
    o, t = both("-d", "B", "hash:pf/t")
    assert o.returncode == t.returncode == 0
    o, t = both("-d", "B", "hash:pf/t")
    assert o.returncode == t.returncode == 1
    o, t = both("-i", "hash:pf/t", stdin="d 4\na dup\n")
    assert o.returncode == t.returncode == 0
    assert b'duplicate entry: "a"' in o.stderr and b'duplicate entry: "a"' in t.stderr
    o, t = both("-i", "-r", "hash:pf/t", stdin="c replaced\n")
    assert o.returncode == t.returncode == 0
    o, t = both("-s", "hash:pf/t")
    assert sorted(o.stdout.splitlines()) == sorted(t.stdout.splitlines()) == \
        [b"a\t1", b"c\treplaced", b"d\t4"]
    o, t = both("-q", "nope", "hash:pf/t")
    assert (o.returncode, o.stdout) == (t.returncode, t.stdout) == (1, b"")
    # btree lists in key order.
    (work / "pt" / "bt").write_text("zeta 1\nalpha 2\nmid 3\n")
    assert ours(postern_bin, work, "btree:pt/bt").returncode == 0
    r = ours(postern_bin, work, "-s", "btree:pt/bt")
    assert r.stdout.splitlines() == [b"alpha\t2", b"mid\t3", b"zeta\t1"]


def test_nul_and_fold_options(postern_bin, work):
    (work / "pt" / "t").write_text("Key val\n")
    assert ours(postern_bin, work, "-N", "cdb:pt/t").returncode == 0
    assert b"Key\x00" not in (work / "pt" / "t.cdb").read_bytes()
    assert b"key\x00val\x00" in (work / "pt" / "t.cdb").read_bytes()
    assert theirs(work, "-q", "KEY", "cdb:pt/t").stdout == b"val\n"
    assert ours(postern_bin, work, "-f", "cdb:pt/t").returncode == 0
    assert b"Key" in (work / "pt" / "t.cdb").read_bytes()
    assert ours(postern_bin, work, "-f", "-q", "key", "cdb:pt/t").returncode == 1
    assert ours(postern_bin, work, "-f", "-q", "Key", "cdb:pt/t").stdout == b"val\n"


def test_base64_file_values(postern_bin, work):
    for d in ("pf", "pt"):
        (work / d / "f1").write_text("k1 a\n")
        (work / d / "f2").write_text("line2\n")
    (work / "pf" / "sni").write_text("sni pf/f1, pf/f2\n")
    (work / "pt" / "sni").write_text("sni pt/f1, pt/f2\n")
    assert theirs(work, "-F", "hash:pf/sni").returncode == 0
    assert ours(postern_bin, work, "-F", "hash:pt/sni").returncode == 0
    assert ours(postern_bin, work, "-q", "sni", "hash:pt/sni").stdout == \
        theirs(work, "-q", "sni", "hash:pf/sni").stdout
    assert ours(postern_bin, work, "-F", "-q", "sni", "hash:pt/sni").stdout == b"k1 a\n\nline2\n\n"


# --------------------------------------------------------------------------- bad input

def test_syntax_errors_name_file_and_line(postern_bin, work):
    (work / "pt" / "t").write_text("good v\n")
    assert ours(postern_bin, work, "hash:pt/t").returncode == 0
    (work / "pt" / "t").write_text("good changed\nbad\n")
    r = ours(postern_bin, work, "hash:pt/t")
    assert r.returncode == 1
    assert r.stderr == b"postmap: fatal: pt/t, line 2: expected format: key whitespace value\n"
    # The old table is untouched; Postfix's text for the same line matches ours.
    assert ours(postern_bin, work, "-q", "good", "hash:pt/t").stdout == b"v\n"
    (work / "pf" / "t").write_text("good changed\nbad\n")
    assert b"pf/t, line 2: expected format: key whitespace value" in theirs(work, "hash:pf/t").stderr
    (work / "pt" / "q").write_text('"unterminated v\n')
    r = ours(postern_bin, work, "hash:pt/q")
    assert r.returncode == 1 and b"line 1: unbalanced '\"' in '\"unterminated v'" in r.stderr
    (work / "pt" / "al").write_text("ok: x\nbad line\n")
    r = ours(postern_bin, work, "hash:pt/al", prog="postalias")
    assert r.returncode == 1
    assert r.stderr == b"postalias: fatal: pt/al, line 2: need name:value pair\n"
    r = ours(postern_bin, work, "-q", "x", "hash:pt/missing")
    assert r.returncode == 1 and r.stderr.startswith(b"postmap: fatal: ") and b"missing.db" in r.stderr
    r = ours(postern_bin, work)
    assert r.returncode == 1 and b"usage: postmap" in r.stderr
    r = ours(postern_bin, work, "regexp:pt/t")
    assert r.returncode == 1 and b"does not support bulk-mode creation" in r.stderr


# --------------------------------------------------------------------------- in a running instance

RCPT = "rcpt@localhost"


def rcpt_reply(port: int, rcpt: str = RCPT) -> str:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=15) as c:
        c.ehlo("client.example")
        c.mail("s@example.org")
        code, msg = c.rcpt(rcpt)
        return f"{code} {msg.decode(errors='replace')}"


def wait_port(port: int, timeout: float = 15) -> None:
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"port {port} not listening")


def postmap_in(inst, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return inst.run("postmap", *args, input=stdin)


def test_table_change_restarts_smtpd(instance):
    acc = instance.root / "access"
    acc.write_text(f"{RCPT} REJECT old text\n")
    acc.chmod(0o644)
    postmap_in(instance, f"hash:{acc}")
    instance.run("postconf", "-e", "mynetworks = 192.0.2.0/24",
                 f"smtpd_recipient_restrictions = check_recipient_access hash:{acc}, permit_mynetworks, "
                 "reject_unauth_destination")
    instance.start()
    wait_port(instance.port)
    assert "old text" in rcpt_reply(instance.port)
    acc.write_text(f"{RCPT} REJECT new text\n")
    postmap_in(instance, f"hash:{acc}")
    instance.wait_for(lambda: "has changed -- restarting" in instance.log(), timeout=20,
                      what="smtpd notices the new table")
    assert f"table hash:{acc} has changed -- restarting" in instance.log()
    instance.wait_for(lambda: "new text" in rcpt_reply(instance.port), timeout=20,
                      what="the next connection sees the new value")


def test_proxy_tables_through_proxymap(instance):
    acc = instance.root / "access"
    acc.write_text(f"{RCPT} REJECT via proxy\n")
    acc.chmod(0o644)
    postmap_in(instance, f"cdb:{acc}")
    other = instance.root / "other"
    other.write_text(f"{RCPT} REJECT never\n")
    other.chmod(0o644)
    postmap_in(instance, f"cdb:{other}")
    instance.run("postconf", "-e", "mynetworks = 192.0.2.0/24",
                 f"proxy_read_maps = proxy:cdb:{acc}",
                 f"smtpd_recipient_restrictions = check_recipient_access proxy:cdb:{acc}, "
                 f"check_sender_access proxy:cdb:{other}, permit")
    instance.start()
    wait_port(instance.port)
    assert "via proxy" in rcpt_reply(instance.port)
    # A table not in proxy_read_maps: refused by proxymap, a temporary failure for smtpd.
    reply = rcpt_reply(instance.port, "someone@localhost")
    assert reply.startswith("451"), reply
    instance.wait_for(lambda: f'request for unapproved table: "cdb:{other}"' in instance.log(),
                      timeout=10, what="proxymap refusal logged")
    assert f"list proxy:cdb:{other} in main.cf:proxy_read_maps" in instance.log()


def test_newaliases_builds_alias_database(instance):
    aliases = instance.root / "aliases"
    aliases.write_text("Postmaster: root\nfoo: bar, baz\n")
    instance.run("postconf", "-e", f"alias_database = hash:{aliases}")
    instance.run("newaliases")
    r = instance.run("postalias", "-q", "postmaster", f"hash:{aliases}")
    assert r.stdout == b"root\n"
    r = instance.run("sendmail", "-bi")
    assert r.returncode == 0
    r = instance.run("postalias", "-q", "@", f"hash:{aliases}")
    assert r.stdout == b"@\n"
