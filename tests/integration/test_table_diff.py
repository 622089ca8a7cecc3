"""Table semantics, differential: Postern's `postmap` against Debian's Postfix 3.7 `postmap`.

A battery of cases generated from the table below (table type, table text, flags, query
keys): each case writes the same files into two fresh directories (one per postmap, each
with an empty main.cf, the directory as working directory so that relative names print
alike), runs the same command steps in both, and compares per step the exit status, the
standard output (sorted for `-s`, whose order is the hash's) and the warning/fatal lines
(program name is `postmap` on both sides). Files get an mtime a minute old: Postfix re-reads
main.cf and texthash sources written less than a second ago (repeating their warnings).

Every step that differs must be listed in KNOWN (with the reason in docs/compatibility.md);
the test fails on any other difference, and on a KNOWN entry that no longer differs (so the
list shrinks as behaviour converges). `python3 tests/integration/test_table_diff.py` prints
the counts (identical / total) and every difference.

Skipped when Debian's postmap (or the pcre/cdb map types) is absent. Runs in about 10 s.
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

DEB_POSTMAP = "/usr/sbin/postmap"
TIMEOUT = 30

pytestmark = pytest.mark.skipif(not os.path.exists(DEB_POSTMAP), reason="Debian postmap not installed")

F1 = "hello\n"
F2 = "world"
FILES = {"f1": F1, "f2": F2}

REGEXP = """\
/^a(.*)/!/^ab/          A-not-ab $1
/^n(.*)/ ! /^nx/        N-not-nx $1
/^empty/
/^x(y)?/                x=$1
/^c/!/d/!/e/            bad-double-negation
/^q/!                   bad-missing-second
/^bad/z                 bad-flag
/(/                     bad-pattern
/^r/                    $2
if /^i/
/^i(.)/!/^ii/           in-if $1
endif
!/^[a-z]/               not-lower
"""

PCRE = """\
/^a(.*)/!/^ab/          A-not-ab $1
/^empty/
/^(?<n>x)/              named $1
/^bad/Z                 bad-flag
/(/                     bad-pattern
!/^[a-z]/               not-lower
"""

CIDR = """\
10.0.0.0/33             bad-mask
1.2.3.4/24              host-bits
foo                     bad-address
1.2.3.0/24
10.1.0.0/16             ten-one
10.0.0.0/8              ten
2001:db8::/129          bad-mask6
2001:db8::/32           v6
1.2.3.0/24/8            double-slash
[192.0.2.1]             bracketed
192.0.2.0/x             bad-len
if 172.16.0.0/12
172.16.1.0/24           inner
endif
if 172.16.0.0/33
endif
"""

FILE_RULES = {
    "regexp": "/^a/ f1, f2\n/^b/ missing\n/^c/ f2\n",
    "pcre": "/^a/ f1, f2\n/^b/ missing\n/^c/ f2\n",
    "cidr": "10.0.0.1 f1,f2\n10.0.0.2 missing\n10.0.0.3 f2\n",
    "texthash": "a f1\nb missing\nc f2 f1\n",
}

TEXTHASH = 'key\\ with\\ space value1\n"quoted key" v2\n"unbal v3\nplain v4\n"a\\"b" v5\nnovalue\n'
INCREMENTAL = 'key\\ with\\ space value1\n"quoted key" v2\n"unbal v3\nplain v4\n"a\\"b" v5\nk\\tt v6\nnovalue\n'


def q(key: str, *maps: str, flags: tuple[str, ...] = ()) -> tuple[list[str], str]:
    return ([*flags, "-q", key, *maps], "")


def cases() -> list[tuple[str, dict[str, str], list[tuple[list[str], str]]]]:
    """(case id, files, steps); a step is (postmap arguments, standard input)."""
    out = []
    out.append(("regexp", {"re": REGEXP}, [q(k, "regexp:re") for k in
                ["axy", "aby", "a", "nq", "nx1", "empty", "x", "xy", "c", "q", "bad", "r", "ij", "iij",
                 "1abc", "zzz"]]))
    out.append(("pcre", {"re": PCRE}, [q(k, "pcre:re") for k in
                ["axy", "aby", "empty", "x", "bad", "1abc", "zzz"]]))
    out.append(("cidr", {"ci": CIDR}, [q(k, "cidr:ci") for k in
                ["1.2.3.4", "10.1.2.3", "10.2.3.4", "2001:db8::1", "192.0.2.1", "172.16.1.1",
                 "172.16.2.1", "junk"]]))
    for kind, text in FILE_RULES.items():
        spec = f"{kind}:rules"
        keys = ["10.0.0.1", "10.0.0.2", "10.0.0.3"] if kind == "cidr" else ["a", "b", "c"]
        steps = [q(k, spec, flags=("-F",)) for k in keys]
        steps.append(q(keys[0], spec))
        out.append((f"{kind}-F", {"rules": text, **FILES}, steps))
    out.append(("inline-F", FILES, [
        q("a", "inline:{a=f1, b=f2}", flags=("-F",)),
        q("b", "inline:{a=f1, b=f2}", flags=("-F",)),
        q("a", "inline:{a=missing, b=f1}", flags=("-F",)),
        q("a", "static:f1", flags=("-F",)),
        q("a", "static:missing", flags=("-F",)),
        q("a", "static:{f1, f2}", flags=("-F",)),
    ]))
    out.append(("randmap", {}, [
        q("a", "randmap:{x}"), q("a", "randmap:x"), q("a", "randmap:{}"),
        q("a", "randmap:{ {x} }"), (["-s", "randmap:{x}"], ""),
    ]))
    out.append(("texthash-s", {"th": TEXTHASH, **FILES, "thf": FILE_RULES["texthash"]}, [
        (["-s", "texthash:th"], ""), q("key\\ with\\ space", "texthash:th"),
        q('"quoted key"', "texthash:th"), q("plain", "texthash:th"),
        (["-F", "-s", "texthash:thf"], ""), (["-s", "texthash:missing"], ""),
    ]))
    out.append(("inline-errors", {}, [q("a", spec) for spec in [
        "inline:{a=1, {b=2}", "inline:{a=1, b}", "inline:{a=1, {b c=2}}",
        "unionmap:{inline:{a=1, b}}", "unionmap:{inline:{a=1}, static:{x}",
        "pipemap:{inline:{a=b}, inline:{b}}", "inline:{}", "inline:{a=1}x", "inline:{ {a=1} }",
        "inline:{ { a = 1 } }", "unionmap:{inline:{{a=1}}}", "static:{}", "static:{a}b",
    ]]))
    incr = [(["hash:t"], ""), (["-i", "hash:t"], INCREMENTAL), (["-s", "hash:t"], "")]
    out.append(("postmap-i", {"t": "x y\n"}, incr + [
        q(k, "hash:t") for k in ["key\\ with\\ space", '"quoted key"', '"a\\"b"', "plain", "k\\tt"]]))
    out.append(("postmap-iF", {"t": "x y\n", **FILES}, [
        (["hash:t"], ""), (["-iF", "hash:t"], "a f1\nb missing\nc f2\n"), (["-s", "hash:t"], ""),
        (["-iF", "hash:t"], "d missing\n"),
    ]))
    msg = "Subject: hi\nFrom: a\n\nbody1\n"
    out.append(("fail", {}, [
        (["-q", "a", "fail:x"], ""), (["-bq", "-", "fail:x"], msg), (["-hq", "-", "fail:x"], msg),
        (["-q", "-", "inline:{a=1}", "fail:x"], "a\nb\n"), (["-s", "fail:x"], ""),
        (["-bq", "-", "static:{}"], msg), (["-q", "-", "static:{}"], msg),
        (["-bq", "-", "inline:{body1=yes}"], msg), (["-hq", "-", "inline:{from: a=yes}"], msg),
    ]))
    more_re = "/^(a)(b)?$/ [$1][$2]\nIF !/^z/\n/^y(.*)/ y $1\nENDIF extra\n/^w/ ${1}\n/^v/ $(x)\n/^u/ $\n/^t/ ok $$ $\n"
    out.append(("regexp-more", {"re": more_re}, [
        (["-q", "-", "regexp:re"], "ab\na\nyes\nzy\nw\nv\nt\nu\n"),
        (["-q", "-", "pcre:re"], "ab\na\nyes\nzy\nw\nv\nt\nu\n"),
    ]))
    cidr_more = "192.168.0.0/16 a\n::ffff:10.0.0.0/104 mapped\n[2001:db8::]/32 br6\n10.0.0.0/8\tb\n0.0.0.0/0 any\n::/0 any6\n"
    out.append(("cidr-more", {"ci": cidr_more}, [
        (["-q", "-", "cidr:ci"], "192.168.1.1\n::ffff:10.1.1.1\n2001:db8::5\n10.1.1.1\n[10.1.1.1]\n::1\n1.2.3\n"
         "01.2.3.4\n1.2.3.4\n2001:db8::1%eth0\n"),
    ]))
    th = "Foo bar\nfoo dup\n  cont\n\"x y\" q\nlast value with  spaces  \n"
    out.append(("texthash-more", {"th": th}, [
        (["-q", "-", "texthash:th"], "foo\nFOO\n\"x y\"\nlast\n"), (["-f", "-q", "Foo", "texthash:th"], ""),
        (["-f", "-q", "foo", "texthash:th"], ""), (["-s", "-f", "texthash:th"], ""),
        (["-q", "Foo", "inline:{Foo=1}"], ""), (["-f", "-q", "foo", "inline:{Foo=1}"], ""),
        (["-s", "inline:{a=1, b=2}"], ""), (["-s", "static:x"], ""), (["-s", "regexp:th"], ""),
        (["-s", "cidr:th"], ""),
    ]))
    flags_re = "/^CaSe$/ insens\n/^Exact$/i exact\n/a b/x spaced\n/^l1$/m multi\n/^(x+?)(x*)$/ lazy $1|$2\n/\\.com$/ dotcom\n#c\n/[[:digit:]]+/ digits\n/^(a|ab)(c|bcd)(d*)$/ posix $1-$2-$3\n"
    pcre_re = "/^CaSe$/ insens\n/^Exact$/i exact\n/a b/x spaced\n/^(x+?)(x*)$/ lazy $1|$2\n/^U(a+)/U ungreedy $1\n/^A/A anchored\n/\\d{3}/ digits\n/é/ accent\n"
    probe = "case\nCASE\nExact\nexact\nab\na b\nl1\nxxx\nexample.COM\nabc123\nabcd\nUaaa\nzA\ncafé\n"
    out.append(("flags", {"re": flags_re, "pc": pcre_re}, [
        (["-q", "-", "regexp:re"], probe), (["-q", "-", "pcre:pc"], probe),
        (["-q", "-", "regexp:re", "pcre:pc"], probe), (["-f", "-q", "-", "regexp:re"], probe),
    ]))
    out.append(("cidr-forms", {"ci": "2001:db8:0:0::/64 long\n::ffff:0:0/96 v4mapped\n::/0 any6\n"
                               "0.0.0.0/0 any4\n"}, [
        (["-q", "-", "cidr:ci"], "2001:db8::1\n2001:DB8::1\n::ffff:1.2.3.4\n::1\n1.2.3.4\n"
         "1.2.3.4 \n 1.2.3.4\n1.2.3.04\n0x1.2.3.4\n1.2.3.4/32\n"),
    ]))
    out.append(("missing-and-empty", {"empty": "", "comments": "# only\n\n  # indented\n"}, [
        q("a", spec) for spec in ["regexp:missing", "pcre:missing", "cidr:missing", "texthash:missing",
                                  "regexp:empty", "cidr:comments", "texthash:comments", "regexp:{}",
                                  "cidr:{ }", "unionmap:{}", "hash:missing", "nosuchtype:x", "inline:",
                                  "static:", "regexp:{ {if /a/ x}, {endif} }", "static:{ a b }",
                                  "unionmap:{static:a, static:b}", "pipemap:{inline:{a=b}, inline:{b=c}}"]
    ] + [(["-q", "-", "unionmap:{inline:{a=1}, regexp:{ {/a/ 2} }}"], "a\nb\n")]))
    out.append(("build", {"src": 'a 1\n"unbal 2\nb 3\n', "srcf": "a f1\nb missing\n", **FILES}, [
        (["hash:src"], ""), q("b", "hash:src"), (["-F", "hash:srcf"], ""), q("a", "hash:srcf", flags=("-F",)),
    ]))
    out.append(("cidr-unclosed-if", {"ci": "if 1.0.0.0/8\nendif more\n1.0.0.1 x\n"}, [
        q("1.0.0.1", "cidr:ci"), q("2.0.0.1", "cidr:ci"),
    ]))
    return out


# Steps that still differ: "case#step" -> reason (each explained in docs/compatibility.md).
BUILD_IS_FATAL = "building a table, a bad source line or unreadable -F file is fatal (old table kept)"
KNOWN: dict[str, str] = {
    "build#0": BUILD_IS_FATAL, "build#1": BUILD_IS_FATAL + ": no table was made",
    "build#2": BUILD_IS_FATAL, "build#3": BUILD_IS_FATAL + ": no table was made",
}


def run(prog: list[str], cwd: Path, args: list[str], stdin: str) -> tuple[int, str, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAIL_")}
    env["MAIL_CONFIG"] = str(cwd)
    env["LC_ALL"] = "C"
    r = subprocess.run([*prog, "-c", str(cwd), *args], input=stdin.encode(), capture_output=True,
                       timeout=TIMEOUT, env=env, cwd=cwd)
    out = r.stdout.decode(errors="replace")
    if "-s" in args or any(a.startswith("-") and "s" in a[1:] and "q" not in a for a in args):
        out = "\n".join(sorted(out.splitlines()))
    err = r.stderr.decode(errors="replace").splitlines()
    return r.returncode, out, err


def run_case(postern: Path, tmp: str, case: str, files: dict[str, str],
             steps: list[tuple[list[str], str]]) -> dict[str, tuple | None]:
    """Runs one case's steps in order in both postmaps; step id -> None or the difference."""
    dirs = []
    for side in ("pf", "pt"):
        d = Path(tmp) / case / side
        d.mkdir(parents=True)
        (d / "main.cf").write_text("")
        for name, text in files.items():
            (d / name).write_text(text)
        # Postfix re-reads main.cf and texthash sources until they are a second old.
        for f in d.iterdir():
            os.utime(f, (time.time() - 60, time.time() - 60))
        dirs.append(d)
    result: dict[str, tuple | None] = {}
    for i, (args, stdin) in enumerate(steps):
        theirs = run([DEB_POSTMAP], dirs[0], args, stdin)
        ours = run([str(postern), "postmap"], dirs[1], args, stdin)
        result[f"{case}#{i}"] = None if theirs == ours else (args, theirs, ours)
    return result


def battery(postern: Path) -> tuple[int, int, dict[str, tuple]]:
    """Runs every case in both postmaps; returns (identical, total, differences).

    Cases run in parallel threads: Debian's postmap sleeps a second before exiting on a
    fatal error, so most of the time is spent waiting, not computing."""
    results: dict[str, tuple | None] = {}
    with tempfile.TemporaryDirectory(prefix="table-diff-") as tmp:
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(run_case, postern, tmp, *c) for c in cases()]
            for f in futures:
                results.update(f.result())
    diffs = {k: v for k, v in results.items() if v is not None}
    return len(results) - len(diffs), len(results), diffs


def test_table_battery_agrees(postern_bin):
    with tempfile.TemporaryDirectory() as cfg:
        (Path(cfg) / "main.cf").write_text("")
        probe = subprocess.run(["/usr/sbin/postconf", "-c", cfg, "-m"], capture_output=True, text=True,
                               timeout=TIMEOUT)
    if not {"pcre", "cdb"} <= set(probe.stdout.split()):
        pytest.skip("Debian postmap lacks pcre or cdb")
    same, total, diffs = battery(postern_bin)
    unexpected = {k: v for k, v in diffs.items() if k not in KNOWN}
    fixed = sorted(k for k in KNOWN if k not in diffs)
    report = "\n".join(f"{k}: {a}\n  postfix: {t}\n  postern: {o}" for k, (a, t, o) in unexpected.items())
    assert not unexpected, f"{same}/{total} identical; unexpected differences:\n{report}"
    assert not fixed, f"KNOWN differences that now agree (remove them): {fixed}"


if __name__ == "__main__":
    binary = Path(os.environ.get("POSTERN_BIN", Path(__file__).resolve().parents[2] / "target/release/postern"))
    s, t, d = battery(binary)
    for key, (a, theirs_r, ours_r) in d.items():
        print(f"{key}: {a}\n  postfix: {theirs_r}\n  postern: {ours_r}")
    print(f"identical: {s}/{t}")
    sys.exit(0 if not d else 1)
