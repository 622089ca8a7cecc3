"""test_milter_real.py -- real milters on loopback (issue 14, "Proof"), through Debian's Postfix
and through Postern, and the differential between the two.

Each filter runs as a private process of this module, on its own loopback port, with its
own configuration, pid file and home in a temp dir, and is killed by PID (with what it
forked) at the end; nothing is started through init scripts:
  * OpenDKIM (sign mode, key made by opendkim-genkey): the signature verifies with dkimpy
    (python3-dkim, run by /usr/bin/python3) against the key served by dnsserver.py;
  * OpenDMARC: a message From a p=reject domain with no DKIM signature and an SPF pass
    only for an unaligned envelope domain (libspf2 passes every loopback client) is
    rejected at the end of the message (its DNS goes to dnsserver.py on
    127.x.y.53:53 through a private mount namespace in which /etc/resolv.conf names it);
  * spamass-milter in front of a private spamd (-L: no network tests): GTUBE is rejected,
    a clean message is tagged X-Spam-Status: No;
  * rspamd's proxy worker in milter mode (private config copy with its own ports, no
    hyperscan, DNS to a dead loopback port): its headers are added; skipped with the
    reason when it does not come up within its bound.
Each MTA has one smtpd service per milter (master.cf `-o smtpd_milters=…`). The
differential sends the same message through the same OpenDKIM service of both MTAs, and
through a chain of the scripted milter tests/integration/milterd.py (adds, inserts,
changes and deletes headers at the end of the message) then OpenDKIM, and compares the
delivered files modulo Received/queue IDs/dates/DKIM b= and t=, and what milterd saw.

Needs root (Postfix's master runs as root, the DNS server binds port 53) and the Debian
packages opendkim opendkim-tools opendmarc spamass-milter spamd rspamd python3-dkim
(installed by .ci/run); a missing one skips its test with the reason.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from dnsserver import DnsServer
from postern import TEST_USER, Instance, PosternError, Proc, descendants, ensure_user, free_port, kill_procs
from test_message_diff import PostfixOracle, _listening, normalise, smtp_send
from test_postfix_peer import POSTFIX, SENDMAIL, wait_until

pytestmark = [
    pytest.mark.skipif(not POSTFIX.exists() or not SENDMAIL.exists(), reason="Debian's Postfix is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (Postfix's master; DNS on port 53)"),
]

WAIT = 20.0
RCPT = "postern-test"
DKIM_DOMAIN = "example.com"
DMARC_DOMAIN = "dmarc-reject.test"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
SYS_PYTHON = Path("/usr/bin/python3")


class Daemon:
    """A filter process of this test: own session, output to a file, killed by PID."""

    def __init__(self, name: str, argv: list[str], home: Path):
        self.name = name
        self.out = home / f"{name}.out"
        with open(self.out, "wb") as f:
            self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                      cwd=home, start_new_session=True)
        self.seen: set[Proc] = set()
        self.snapshot()

    def snapshot(self) -> None:
        for pid in {self.p.pid} | descendants(self.p.pid):
            p = Proc.of(pid)
            if p is not None:
                self.seen.add(p)

    def output(self) -> str:
        try:
            return self.out.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def wait_port(self, port: int, timeout: float = WAIT) -> None:
        import socket
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.snapshot()
            if self.p.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.p.returncode}):\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} not listening on {port} after {timeout:.0f}s:\n{self.output()}")

    def close(self) -> None:
        self.snapshot()
        kill_procs(self.seen, grace=3.0)
        try:
            self.p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def _serve(dm: Daemon, port: int):
    """Fixture body: the milter socket once `dm` listens on `port`; `dm` killed at the end."""
    try:
        dm.wait_port(port)
        yield f"inet:127.0.0.1:{port}"
    finally:
        dm.close()


def _need(*tools: str) -> None:
    for t in tools:
        if shutil.which(t) is None and not Path(t).exists():
            pytest.skip(f"{t} is not installed (Debian package missing)")


# --------------------------------------------------------------------------- filters

@pytest.fixture(scope="module")
def home():
    d = Path(tempfile.mkdtemp(prefix="postern-milters-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def dns(home):
    """dnsserver.py on 127.x.y.53:53 (port 53: OpenDMARC's resolver reads resolv.conf) and a
    resolv.conf naming it; yields (server, address, resolv.conf path)."""
    addr = f"127.{random.randint(100, 250)}.{random.randint(1, 250)}.53"
    try:
        server = DnsServer({}, host=addr, port=53)
    except OSError as e:
        pytest.skip(f"cannot run the DNS server on {addr}:53: {e}")
    resolv = home / "resolv.conf"
    resolv.write_text(f"nameserver {addr}\noptions timeout:1 attempts:1\n")
    with server:
        yield server, addr, resolv


@pytest.fixture(scope="module")
def opendkim(home, dns):
    _need("opendkim", "opendkim-genkey")
    server, _, _ = dns
    d = home / "opendkim"
    d.mkdir()
    subprocess.run(["opendkim-genkey", "-D", str(d), "-d", DKIM_DOMAIN, "-s", "sel"], check=True,
                   capture_output=True, timeout=WAIT)
    txt = "".join(re.findall(r'"([^"]*)"', (d / "sel.txt").read_text()))
    server.zone[(f"sel._domainkey.{DKIM_DOMAIN}", "TXT")] = [[txt[i:i + 255] for i in range(0, len(txt), 255)]]
    port = free_port()
    (d / "opendkim.conf").write_text(
        f"Syslog no\nMode s\nDomain {DKIM_DOMAIN}\nSelector sel\nKeyFile {d}/sel.private\n"
        f"Socket inet:{port}@127.0.0.1\nPidFile {d}/pid\nRequireSafeKeys no\n"
        "Canonicalization relaxed/simple\n")
    yield from _serve(Daemon("opendkim", ["opendkim", "-f", "-l", "-x", str(d / "opendkim.conf")], d), port)


@pytest.fixture(scope="module")
def opendmarc(home, dns):
    _need("opendmarc", "unshare")
    server, _, resolv = dns
    server.zone[(f"_dmarc.{DMARC_DOMAIN}", "TXT")] = ["v=DMARC1; p=reject"]
    server.zone[(DMARC_DOMAIN, "TXT")] = ["v=spf1 ip4:192.0.2.1 -all"]
    server.zone[(DMARC_DOMAIN, "A")] = ["192.0.2.1"]
    d = home / "opendmarc"
    d.mkdir()
    (d / "ignore").write_text("192.0.2.99\n")  # not 127.0.0.1 (the default ignores it)
    port = free_port()
    (d / "opendmarc.conf").write_text(
        f"Syslog false\nSocket inet:{port}@127.0.0.1\nPidFile {d}/pid\nRejectFailures true\n"
        f"IgnoreHosts {d}/ignore\nSPFSelfValidate true\nSPFIgnoreResults false\nAuthservID mx.test.example\n")
    inner = f"mount --bind {resolv} /etc/resolv.conf && exec opendmarc -f -c {d}/opendmarc.conf"
    yield from _serve(Daemon("opendmarc", ["unshare", "--mount", "--propagation", "private", "sh", "-c", inner], d),
                      port)


@pytest.fixture(scope="module")
def spamass(home):
    _need("spamd", "spamc", "spamass-milter")
    d = home / "spamassassin"
    d.mkdir()
    d.chmod(0o777)
    sport, mport = free_port(), free_port()
    spamd = Daemon("spamd", ["spamd", "-L", "-i", "127.0.0.1", "-p", str(sport), "-r", str(d / "spamd.pid"),
                             "-s", "stderr", "-m", "2", "-u", "nobody", f"--helper-home-dir={d}", "-x"], d)
    milter = None
    try:
        spamd.wait_port(sport, timeout=40)
        milter = Daemon("spamass-milter", ["spamass-milter", "-p", f"inet:{mport}@127.0.0.1", "-r", "15",
                                           "-u", "nobody", "--", "-d", "127.0.0.1", "-p", str(sport)], d)
        milter.wait_port(mport)
        yield f"inet:127.0.0.1:{mport}"
    finally:
        for x in (milter, spamd):
            if x is not None:
                x.close()


@pytest.fixture(scope="module")
def rspamd(home):
    _need("rspamd")
    d = home / "rspamd"
    for sub in ("db", "run", "log", "local/local.d", "local/override.d"):
        (d / sub).mkdir(parents=True)
    ports = [free_port() for _ in range(4)]
    conf = Path("/etc/rspamd/rspamd.conf").read_text()
    for old, new in zip((11333, 11334, 11332, 11335), ports):
        conf = conf.replace(f"localhost:{old}", f"127.0.0.1:{new}")
    (d / "rspamd.conf").write_text(conf)
    # A short TLD list: compiling the full one takes ~20 s on a fresh database directory.
    (d / "tld.dat").write_text("com\nnet\norg\ntest\nexample\n")
    (d / "local/local.d/options.inc").write_text(
        'dns { nameserver = ["127.0.0.1:1"]; timeout = 1s; retransmits = 1; }\ndisable_hyperscan = true;\n'
        f'url_tld = "{d}/tld.dat";\n')
    (d / "local/local.d/worker-proxy.inc").write_text('upstream "local" { default = yes; self_scan = yes; }\n')
    (d / "local/local.d/milter_headers.conf").write_text('use = ["x-spamd-result", "x-rspamd-server"];\nskip_local = false;\nskip_authenticated = false;\n')
    dm = Daemon("rspamd", ["rspamd", "-f", "-i", "-u", "root", "-g", "root", "-c", str(d / "rspamd.conf"),
                           f"--var=DBDIR={d}/db", f"--var=RUNDIR={d}/run", f"--var=LOGDIR={d}/log",
                           f"--var=LOCAL_CONFDIR={d}/local"], d)
    try:
        try:
            dm.wait_port(ports[2], timeout=30)
        except RuntimeError as e:
            pytest.skip(f"rspamd did not come up within 30 s here: {str(e)[:300]}")
        yield f"inet:127.0.0.1:{ports[2]}"
    finally:
        dm.close()


# The scripted milter (tests/integration/milterd.py) edits every message at the end of it.
MILTERD_SCRIPT = {"on": {"eom": {"modify": [
    {"add_header": ["X-Scanned", "milterd"]},
    {"insert_header": [0, "X-First", "top"]},
    {"change_header": [1, "X-Change-Me", "changed"]},
    {"delete_header": [1, "X-Delete-Me"]},
]}}}


@pytest.fixture(scope="module")
def chain(opendkim):
    """milterd.py (edits), then OpenDKIM (signs): the differential's chain."""
    from milterd import Milterd
    with Milterd(MILTERD_SCRIPT, listen="inet:127.0.0.1:0") as m:
        yield m, f"{m.endpoint},{opendkim}"


MILTERS = ("opendkim", "opendmarc", "spamass", "rspamd", "chain")


# --------------------------------------------------------------------------- the MTAs

def _service(port: int, milters: str) -> str:
    return (f"127.0.0.1:{port} inet n - n - - smtpd\n  -o smtpd_milters={milters}\n"
            "  -o milter_default_action=tempfail\n")


class Mta:
    """One MTA (Postfix or Postern) with an smtpd service per milter; mail to RCPT."""

    def __init__(self, name: str):
        self.name = name
        self.ports: dict[str, int] = {}
        self.pfx: PostfixOracle | None = None
        self.inst: Instance | None = None

    def delivered(self) -> list[Path]:
        d = (self.pfx.spool if self.pfx else self.inst.root / "mail") / RCPT / "new"
        return sorted(d.iterdir()) if d.is_dir() else []

    def wait_subject(self, subject: str) -> bytes:
        def find():
            for p in self.delivered():
                raw = p.read_bytes()
                if re.search(rb"(?m)^Subject: " + re.escape(subject.encode()) + rb"\r?$", raw):
                    return raw
            return None
        return wait_until(find, f"{self.name}: delivery of {subject!r}", self.pfx, self.inst)

    def log(self) -> str:
        return self.pfx.log() if self.pfx else self.inst.log()


# Why a filter is missing: not installed (skip) or did not start (its tests fail).
UNAVAILABLE: dict[str, tuple[bool, str]] = {}


def _milter_sockets(request) -> dict[str, str]:
    """The filters that run; one that cannot start fails its own tests, not the others."""
    out = {}
    for m in MILTERS:
        try:
            v = request.getfixturevalue(m)
        except pytest.skip.Exception as e:
            UNAVAILABLE[m] = (False, str(e))
            continue
        except Exception as e:  # noqa: BLE001 - reported by the tests that use it
            UNAVAILABLE[m] = (True, f"{type(e).__name__}: {e}")
            continue
        out[m] = v[1] if m == "chain" else v
    return out


def _port(mta: Mta, milter: str) -> int:
    if milter not in mta.ports:
        failed, why = UNAVAILABLE.get(milter, (False, "not configured"))
        (pytest.fail if failed else pytest.skip)(f"{milter}: {why}"[:1500])
    return mta.ports[milter]


@pytest.fixture(scope="module")
def postfix_mta(request):
    socks = _milter_sockets(request)
    mta = Mta("postfix")
    pfx = PostfixOracle(free_port())
    mta.pfx = pfx
    try:
        pfx.setup()
        with open(pfx.conf / "master.cf", "a") as m:
            for name, sock in socks.items():
                mta.ports[name] = free_port()
                m.write(_service(mta.ports[name], sock))
        pfx.start()
        for port in mta.ports.values():
            wait_until(lambda: _listening(port), f"Postfix smtpd on {port}", pfx)
        yield mta
    finally:
        pfx.close()


@pytest.fixture(scope="module")
def postern_mta(request, postern_bin):
    socks = _milter_sockets(request)
    ensure_user(RCPT)
    mta = Mta("postern")
    inst = Instance.create(postern_bin, user=ensure_user(TEST_USER))
    mta.inst = inst
    try:
        inst.run("postconf", "-e", "myhostname = mx.test.example", "mydomain = test.example",
                 "myorigin = $myhostname")
        with open(inst.root / "master.cf", "a") as m:
            for name, sock in socks.items():
                mta.ports[name] = free_port()
                m.write(_service(mta.ports[name], sock))
        try:
            inst.start()
            for port in mta.ports.values():
                inst.wait_for(lambda: _listening(port), what=f"Postern smtpd on {port}")
        except PosternError as e:
            pytest.xfail(f"Postern does not run smtpd_milters yet (issue 14 item 1): {str(e)[:400]}")
        yield mta
    finally:
        inst.close()


@pytest.fixture(params=["postfix", "postern"])
def mta(request) -> Mta:
    return request.getfixturevalue(f"{request.param}_mta")


def _message(sender: str, subject: str, body: str = "hello\n") -> bytes:
    return (f"From: Sender <{sender}>\nTo: <{RCPT}@localhost>\nSubject: {subject}\n"
            f"Date: Sun, 6 Dec 2026 10:00:00 +0000\nMessage-ID: <{subject}@example.com>\n\n{body}").encode()


def _send(mta: Mta, milter: str, sender: str, subject: str, body: str = "hello\n",
          envelope: str | None = None) -> str:
    return smtp_send(_port(mta, milter), envelope or sender, f"{RCPT}@localhost", _message(sender, subject, body))


def dkim_verify(raw: bytes, dns_addr: str) -> bool:
    """dkimpy's verdict, the key fetched from dnsserver.py (python3-dkim is Debian's)."""
    if not SYS_PYTHON.exists():
        pytest.skip("/usr/bin/python3 missing")
    script = (
        "import sys, dkim, dnsserver\n"
        f"addr = {dns_addr!r}\n"
        "def txt(name, timeout=5):\n"
        "    import socket, struct\n"
        "    q = struct.pack('!HHHHHH', 7, 0x0100, 1, 0, 0, 0) + dnsserver.encode_name(name.decode()) + struct.pack('!HH', 16, 1)\n"
        "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(timeout); s.sendto(q, (addr, 53))\n"
        "    r, _ = s.recvfrom(4096)\n"
        "    _, off = dnsserver.decode_name(r, 12); off += 4\n"
        "    if struct.unpack('!H', r[6:8])[0] == 0: return None\n"
        "    _, off = dnsserver.decode_name(r, off); rdlen = struct.unpack('!H', r[off + 8:off + 10])[0]; off += 10\n"
        "    data, out = r[off:off + rdlen], b''\n"
        "    while data: out += data[1:1 + data[0]]; data = data[1 + data[0]:]\n"
        "    return out\n"
        "sys.exit(0 if dkim.verify(sys.stdin.buffer.read(), dnsfunc=txt) else 1)\n")
    r = subprocess.run([str(SYS_PYTHON), "-c", script], input=raw, capture_output=True, timeout=WAIT,
                       env={"PYTHONPATH": str(Path(__file__).parent), "PATH": "/usr/bin:/bin"})
    if r.returncode not in (0, 1):
        pytest.skip(f"dkimpy unavailable: {r.stderr.decode(errors='replace')[-300:]}")
    return r.returncode == 0


# --------------------------------------------------------------------------- tests

def test_opendkim_signs_and_dkimpy_verifies(mta, dns, home, postern_bin):
    subject = f"dkim-{mta.name}"
    r = _send(mta, "opendkim", f"alice@{DKIM_DOMAIN}", subject)
    assert r.startswith("250"), r
    raw = mta.wait_subject(subject)
    assert re.search(rb"(?m)^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/simple; d=example\.com;", raw), raw[:800]
    assert b"s=sel;" in raw
    assert dkim_verify(raw, dns[1]), raw.split(b"\n\n")[0]
    # Issue 15: mail OpenDKIM signed verifies with Postern's own verifier too (a changed
    # body does not), the key fetched through dns_servers from the same DNS server.
    conf = home / f"auth-conf-{mta.name}"
    conf.mkdir(exist_ok=True)
    (conf / "main.cf").write_text(f"dns_servers = {dns[1]}:53\nmyhostname = mx.test.example\n")
    verify = [str(postern_bin), "-c", str(conf), "auth", "verify"]
    ar = subprocess.run(verify, input=raw, capture_output=True, timeout=WAIT)
    assert ar.returncode == 0 and b"dkim=pass" in ar.stdout, (ar.stdout, ar.stderr)
    head, _, body = raw.partition(b"\n\n")
    ar = subprocess.run(verify, input=head + b"\n\n" + body + b"changed\n", capture_output=True,
                        timeout=WAIT)
    assert b"dkim=pass" not in ar.stdout, ar.stdout


def test_opendmarc_rejects_p_reject_failure(mta):
    # libspf2 passes every loopback client, so SPF passes only for the envelope domain,
    # which is not aligned with the From domain; there is no DKIM signature: DMARC fails.
    r = _send(mta, "opendmarc", f"mallory@{DMARC_DOMAIN}", f"dmarc-{mta.name}", envelope="bounce@other.test")
    assert r.startswith("550 5.7.1 rejected by DMARC policy for dmarc-reject.test"), r
    # A From domain without a DMARC record passes, with OpenDMARC's Authentication-Results.
    subject = f"nodmarc-{mta.name}"
    r = _send(mta, "opendmarc", "carol@nodmarc.test", subject)
    assert r.startswith("250"), r
    raw = mta.wait_subject(subject)
    assert b"Authentication-Results: mx.test.example; dmarc=none" in raw, raw[:1200]


def test_spamassassin_gtube_rejected_clean_tagged(mta):
    r = _send(mta, "spamass", "spammer@example.net", f"gtube-{mta.name}", f"{GTUBE}\n")
    assert r.startswith("550 5.7.1 Blocked by SpamAssassin"), r
    subject = f"clean-{mta.name}"
    r = _send(mta, "spamass", "friend@example.net", subject, "An ordinary note about lunch.\n")
    assert r.startswith("250"), r
    raw = mta.wait_subject(subject)
    assert re.search(rb"(?m)^X-Spam-Status: No, score=", raw), raw.split(b"\n\n")[0]
    assert re.search(rb"(?m)^X-Spam-Checker-Version: SpamAssassin", raw), raw.split(b"\n\n")[0]


def test_rspamd_adds_headers(mta):
    subject = f"rspamd-{mta.name}"
    r = _send(mta, "rspamd", "someone@example.net", subject)
    assert r.startswith("250"), r
    raw = mta.wait_subject(subject)
    assert re.search(rb"(?m)^X-Spamd-Result: default: False \[", raw), raw.split(b"\n\n")[0]
    assert re.search(rb"(?m)^X-Rspamd-Server: ", raw), raw.split(b"\n\n")[0]


DKIM_VOLATILE = re.compile(rb"(\b[bt]=)[^;]*")


def _comparable(raw: bytes) -> bytes:
    """normalise() of test_message_diff, then the DKIM signature value and time stamp, and
    the Received headers (each MTA's own) dropped."""
    raw = normalise(raw)
    head, _, body = raw.partition(b"\n\n")
    lines, skip = [], False
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if not skip:
                lines.append(line)
            continue
        skip = line.lower().startswith(b"received:")
        if not skip:
            lines.append(line)
    head = b"\n".join(lines)
    head = re.sub(rb"DKIM-Signature:[^\n]*(?:\n[ \t][^\n]*)*",
                  lambda m: DKIM_VOLATILE.sub(rb"\1X", re.sub(rb"\s+", b" ", m.group(0))), head)
    return head + b"\n\n" + body


@pytest.mark.parametrize("service", ["opendkim", "chain"])
def test_differential_postfix_vs_postern(postfix_mta, postern_mta, chain, service):
    """The same message through the same milters (OpenDKIM alone; milterd.py's edits then
    OpenDKIM) of both MTAs: the delivered files are equal modulo Received/queue IDs/dates/
    DKIM b= and t=, and milterd saw the same headers and body from both."""
    subject = f"diff-{service}"
    msgs, seen = {}, {}
    body = "line one\n.dot line\n\nlast\n"
    for mta in (postfix_mta, postern_mta):
        before = len(chain[0].sessions)
        msg = _message(f"alice@{DKIM_DOMAIN}", subject, body).replace(
            b"\n\n", b"\nX-Change-Me: orig\nX-Delete-Me: gone\n\n", 1)
        r = smtp_send(_port(mta, service), f"alice@{DKIM_DOMAIN}", f"{RCPT}@localhost", msg)
        assert r.startswith("250"), (mta.name, r)
        msgs[mta.name] = _comparable(mta.wait_subject(subject))
        got = [m for sess in chain[0].sessions[before:] for m in sess.get("messages", [])]
        seen[mta.name] = [[h for h in m["headers"] if h[0].lower() != "received"] + [m["body"]] for m in got]
    a, b = msgs["postfix"], msgs["postern"]
    assert a == b, f"postfix:\n{a.decode(errors='replace')}\npostern:\n{b.decode(errors='replace')}"
    if service == "chain":
        assert b"X-Scanned: milterd" in b and b"X-Change-Me: changed" in b and b"X-Delete-Me" not in b, b
        assert seen["postfix"] and seen["postfix"] == seen["postern"], seen
