"""test_auth_cmd.py -- `postern dkim keygen` and `postern auth sign|verify|spf` (issue 15)
against independent implementations: dkimpy (python3-dkim) and pyspf (python3-spf), both
Debian's, run by /usr/bin/python3 (the pytest interpreter need not have them).

  * our RSA and Ed25519 signatures (keys from `postern dkim keygen` and from openssl, PKCS#1
    and PKCS#8) verify with dkimpy, the public key taken from keygen's TXT record;
  * dkimpy's signatures verify with `postern auth verify` (dkim=pass) and a tampered
    body does not; an ARC set sealed by dkimpy gives arc=pass;
  * SPF results for 22 published records (pass/fail/softfail/neutral/none/permerror,
    include loops, >10 lookups, void lookups, exp=, SERVFAIL; temperror with the DNS
    server down) agree with pyspf's `check2`, both asking the same loopback DNS server
    (tests/integration/dnsserver.py; pyspf through dnspython pointed at its port);
  * DMARC pass (aligned SPF or DKIM) and fail with the published policy; at most 8
    signatures are checked.

No instance is started: the commands read main.cf from a private directory
(`dns_servers = 127.0.0.1:PORT`). Needs python3-dkim, python3-spf, python3-dnspython,
python3-nacl (Ed25519 in dkimpy) and openssl; a missing one skips.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dnsserver import DnsServer

SYS_PYTHON = Path("/usr/bin/python3")
HERE = Path(__file__).parent
WAIT = 30
CLIENT = "192.0.2.10"
HELO = "client.example"
MSG = (b"From: Alice <alice@example.com>\nTo: bob@example.net\nSubject: auth test\n"
       b"Date: Sun, 6 Dec 2026 10:00:00 +0000\nMessage-ID: <auth-1@example.com>\n\n"
       b"Hello Bob,\n\n  spaces   and tabs\t here.\n\n\n")


def sys_python(script: str, stdin: bytes = b"") -> str:
    """Runs `script` with Debian's python3 (dkimpy, pyspf); skips when they are missing."""
    if not SYS_PYTHON.exists():
        pytest.skip("/usr/bin/python3 missing")
    r = subprocess.run([str(SYS_PYTHON), "-c", script], input=stdin, capture_output=True,
                       timeout=WAIT * 3, env={"PYTHONPATH": str(HERE), "PATH": "/usr/bin:/bin"})
    err = r.stderr.decode(errors="replace")
    if r.returncode != 0:
        if "ModuleNotFoundError" in err:
            pytest.skip(f"python module missing: {err.strip().splitlines()[-1]}")
        raise AssertionError(f"python failed: {err[-2000:]}")
    return r.stdout.decode()


def free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def zone():
    return {}


@pytest.fixture(scope="module")
def dns(zone):
    with DnsServer(zone) as port:
        yield port


def config_dir(tmp: Path, port: int) -> Path:
    d = tmp / f"conf-{port}"
    d.mkdir(exist_ok=True)
    (d / "main.cf").write_text(f"dns_servers = 127.0.0.1:{port}\nmyhostname = mx.auth.test\n")
    return d


@pytest.fixture(scope="module")
def conf(tmp_path_factory, dns) -> Path:
    return config_dir(tmp_path_factory.mktemp("auth"), dns)


def postern(bin_: Path, conf: Path | None, *args: str, stdin: bytes = b"", ok: bool = True):
    argv = [str(bin_)] + (["-c", str(conf)] if conf else []) + list(args)
    r = subprocess.run(argv, input=stdin, capture_output=True, timeout=WAIT)
    if ok:
        assert r.returncode == 0, (argv, r.returncode, r.stderr)
    return r


def txt_of_zone_line(text: str) -> str:
    """The TXT value of keygen's zone-file line (its quoted character-strings joined)."""
    return "".join(re.findall(r'"([^"]*)"', text))


@pytest.fixture(scope="module")
def keys(postern_bin, tmp_path_factory, zone):
    """Keys and their published TXT records: keygen rsa + ed25519, openssl PKCS#8 rsa + ed25519."""
    d = tmp_path_factory.mktemp("keys")
    out = {}
    for sel, kind in (("krsa", ["-b", "2048"]), ("ked", ["-t", "ed25519"])):
        r = postern(postern_bin, None, "dkim", "keygen", *kind, "-s", sel, "-d", "example.com", "-D", str(d))
        line = r.stdout.decode()
        assert line.startswith(f"{sel}._domainkey.example.com.\tIN\tTXT\t"), line
        assert (d / f"{sel}.txt").read_text() == line
        assert (d / f"{sel}.private").stat().st_mode & 0o777 == 0o600
        out[sel] = (d / f"{sel}.private", txt_of_zone_line(line))
    # keygen refuses to overwrite a key
    r = postern(postern_bin, None, "dkim", "keygen", "-t", "ed25519", "-s", "ked", "-d", "example.com",
                "-D", str(d), ok=False)
    assert r.returncode == 73 and b"postern: fatal: create " in r.stderr, r
    if shutil.which("openssl"):
        for sel, alg in (("orsa", "RSA"), ("oed", "ED25519")):
            key = d / f"{sel}.pem"
            subprocess.run(["openssl", "genpkey", "-algorithm", alg, "-out", str(key)], check=True,
                           capture_output=True, timeout=WAIT)
            der = subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
                                 check=True, capture_output=True, timeout=WAIT).stdout
            if alg == "ED25519":
                out[sel] = (key, "v=DKIM1; k=ed25519; p=" + base64.b64encode(der[-32:]).decode())
            else:
                out[sel] = (key, "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode())
    for sel, (_, txt) in out.items():
        # one record of several character-strings
        zone[(f"{sel}._domainkey.example.com", "TXT")] = [[txt[i:i + 250] for i in range(0, len(txt), 250)]]
    return out


def dkimpy_verify_all(raw: bytes, keys: dict) -> list[bool]:
    """dkimpy's verdict for each DKIM-Signature of `raw`, keys from our TXT records."""
    recs = {f"{sel}._domainkey.example.com.": txt for sel, (_, txt) in keys.items()}
    script = (
        "import sys, json, dkim\n"
        f"recs = json.loads({json.dumps(json.dumps(recs))})\n"
        "def txt(name, timeout=5):\n"
        "    v = recs.get(name.decode() if isinstance(name, bytes) else name)\n"
        "    return v.encode() if v else None\n"
        "raw = sys.stdin.buffer.read()\n"
        "d = dkim.DKIM(raw)\n"
        "n = sum(1 for h in d.headers if h[0].lower() == b'dkim-signature')\n"
        "print(json.dumps([bool(dkim.DKIM(raw).verify(idx=i, dnsfunc=txt)) for i in range(n)]))\n")
    return json.loads(sys_python(script, raw))


def test_our_signatures_verify_with_dkimpy(postern_bin, conf, keys, tmp_path):
    msg = tmp_path / "msg.eml"
    msg.write_bytes(MSG)
    args = []
    for sel, (path, _) in keys.items():
        args += ["-s", sel, "-d", "example.com", "-k", str(path)]
    signed = postern(postern_bin, conf, "auth", "sign", *args, str(msg)).stdout
    assert signed.endswith(MSG) and b"\r" not in signed, signed[:600]
    heads = re.findall(rb"(?m)^DKIM-Signature: v=1; a=([a-z0-9-]+);", signed)
    want = [b"ed25519-sha256" if sel.endswith("ed") else b"rsa-sha256" for sel in keys]
    assert heads == want, signed[:1500]
    assert dkimpy_verify_all(signed, keys) == [True] * len(keys)
    # our own verifier agrees; CRLF input keeps CRLF
    r = postern(postern_bin, conf, "auth", "verify", "--authserv-id", "mx.auth.test", stdin=signed)
    ar = r.stdout.decode()
    assert ar.startswith("Authentication-Results: mx.auth.test;\n"), ar
    assert ar.count("dkim=pass") == len(keys), ar
    crlf = MSG.replace(b"\n", b"\r\n")
    signed2 = postern(postern_bin, conf, "auth", "sign", "-s", "ked", "-d", "example.com", "-k",
                      str(keys["ked"][0]), stdin=crlf).stdout
    assert signed2.endswith(crlf) and b"\r\n\t" in signed2.split(crlf[:20])[0], signed2[:400]
    assert dkimpy_verify_all(signed2, keys) == [True]
    # a message without From is refused, a missing key is a one-line error
    r = postern(postern_bin, conf, "auth", "sign", "-s", "ked", "-d", "example.com", "-k",
                str(keys["ked"][0]), stdin=b"To: x@y\n\nbody\n", ok=False)
    assert r.returncode == 65 and r.stderr.startswith(b"postern: fatal: cannot sign: "), r
    r = postern(postern_bin, conf, "auth", "sign", "-s", "x", "-d", "example.com", "-k",
                str(tmp_path / "nokey"), stdin=MSG, ok=False)
    assert r.returncode == 78 and r.stderr.count(b"\n") == 1, r


def test_dkimpy_signatures_verify_in_postern(postern_bin, conf, keys):
    rsa_pem = keys["krsa"][0].read_text()
    ed_der = base64.b64decode("".join(keys["ked"][0].read_text().splitlines()[1:-1]))
    at = ed_der.index(b"\x04\x22\x04\x20") + 4  # PKCS#8 OCTET STRING { OCTET STRING seed }
    script = (
        "import sys, base64, dkim\n"
        "raw = sys.stdin.buffer.read()\n"
        f"rsa = {rsa_pem.encode()!r}\n"
        f"ed = base64.b64encode({ed_der[at:at + 32]!r})\n"
        "s1 = dkim.sign(raw, b'krsa', b'example.com', rsa, canonicalize=(b'relaxed', b'simple'),\n"
        "               include_headers=[b'from', b'to', b'subject', b'date'])\n"
        "s2 = dkim.sign(raw, b'ked', b'example.com', ed, signature_algorithm=b'ed25519-sha256')\n"
        "sys.stdout.buffer.write(s1 + s2 + raw)\n")
    signed = sys_python(script, MSG).encode()
    ar = postern(postern_bin, conf, "auth", "verify", stdin=signed).stdout.decode()
    assert ar.startswith("Authentication-Results: mx.auth.test;"), ar
    assert ar.count("dkim=pass") == 2, ar
    assert "header.i=@example.com header.s=krsa" in ar and "header.s=ked" in ar, ar
    tampered = signed.replace(b"Hello Bob", b"Hello Eve")
    ar = postern(postern_bin, conf, "auth", "verify", stdin=tampered).stdout.decode()
    # mail-auth words a body-hash mismatch as Gmail does: neutral (body hash did not verify)
    assert "dkim=pass" not in ar and len(re.findall(r"dkim=(fail|neutral) ", ar)) == 2, ar
    # a signature whose key is not published: permerror/temperror, never pass
    nokey = signed.replace(b"s=krsa", b"s=gone")
    ar = postern(postern_bin, conf, "auth", "verify", stdin=nokey).stdout.decode()
    assert ar.count("dkim=pass") == 1 and re.search(r"dkim=(permerror|fail|neutral)", ar), ar


# (domain, record(s)); extra zone entries below. The client is 192.0.2.10.
SPF_RECORDS = {
    "pass.spf.test": "v=spf1 ip4:192.0.2.0/24 -all",
    "fail.spf.test": "v=spf1 ip4:198.51.100.1 -all",
    "softfail.spf.test": "v=spf1 ~all",
    "neutral.spf.test": "v=spf1 ?all",
    "notspf.spf.test": "hello world",
    "a.spf.test": "v=spf1 a -all",
    "mx.spf.test": "v=spf1 mx -all",
    "include.spf.test": "v=spf1 include:pass.spf.test -all",
    "loop.spf.test": "v=spf1 include:loop.spf.test -all",
    "toomany.spf.test": "v=spf1 " + " ".join(f"a:h{i}.spf.test" for i in range(1, 12)) + " -all",
    "void.spf.test": "v=spf1 a:v1.spf.test a:v2.spf.test a:v3.spf.test -all",
    "syntax.spf.test": "v=spf1 ip4:300.1.1.1 -all",
    "unknown.spf.test": "v=spf1 foo:bar -all",
    "redirect.spf.test": "v=spf1 redirect=fail.spf.test",
    "exists.spf.test": "v=spf1 exists:%{i}.ex.spf.test -all",
    "exp.spf.test": "v=spf1 -all exp=why.spf.test",
    "ip6.spf.test": "v=spf1 ip6:2001:db8::/32 -all",
    "servfail.spf.test": DnsServer.SERVFAIL,
    "two.spf.test": ("v=spf1 -all", "v=spf1 +all"),
    "voidlate.spf.test": "v=spf1 ip4:192.0.2.10 a:v1.spf.test a:v2.spf.test a:v3.spf.test -all",
    "badinclude.spf.test": "v=spf1 include:unknown.spf.test -all",
}
SPF_EXTRA = {
    ("a.spf.test", "A"): [CLIENT],
    ("mx.spf.test", "MX"): ["10 mx1.spf.test"],
    ("mx1.spf.test", "A"): [CLIENT],
    ("192.0.2.10.ex.spf.test", "A"): ["127.0.0.2"],
    ("why.spf.test", "TXT"): ["%{i} is not one of %{d}'s servers"],
    **{(f"h{i}.spf.test", "A"): [f"203.0.113.{i}"] for i in range(1, 12)},
}
SPF_CASES = [*SPF_RECORDS, "none.spf.test"]


def pyspf(port: int, cases: list[str], ip: str) -> dict:
    script = (
        "import json, dns.resolver, spf\n"
        "r = dns.resolver.Resolver(configure=False)\n"
        f"r.nameservers = ['127.0.0.1']; r.port = {port}; r.lifetime = 4; r.timeout = 2\n"
        "dns.resolver.default_resolver = r\n"
        "out = {}\n"
        f"for d in {cases!r}:\n"
        f"    out[d] = spf.check2(i={ip!r}, s='user@' + d, h={HELO!r}, timeout=4, querytime=4)\n"
        "print(json.dumps(out))\n")
    return json.loads(sys_python(script))


def postern_spf(bin_, conf, domain: str, ip: str = CLIENT) -> tuple[str, str]:
    r = postern(bin_, conf, "auth", "spf", "--ip", ip, "--helo", HELO, "--sender", f"user@{domain}")
    lines = r.stdout.decode().splitlines()
    assert lines[1].startswith(f"Received-SPF: {lines[0]} (mx.auth.test: "), lines
    exp = next((ln.split(": ", 1)[1] for ln in lines if ln.startswith("explanation: ")), "")
    return lines[0], exp


def test_spf_agrees_with_pyspf(postern_bin, conf, dns, zone):
    for d, rec in SPF_RECORDS.items():
        zone[(d, "TXT")] = rec if rec is DnsServer.SERVFAIL else list(rec) if isinstance(rec, tuple) else [rec]
    zone.update(SPF_EXTRA)
    theirs = pyspf(dns, SPF_CASES, CLIENT)
    ours = {d: postern_spf(postern_bin, conf, d) for d in SPF_CASES}
    got = {d: o[0] for d, o in ours.items()}
    want = {d: t[0] for d, t in theirs.items()}
    assert got == want, {d: (got[d], want[d]) for d in SPF_CASES if got[d] != want[d]}
    # the set covers every result
    assert set(got.values()) == {"pass", "fail", "softfail", "neutral", "none", "permerror", "temperror"}
    assert ours["exp.spf.test"][1] == theirs["exp.spf.test"][1] == f"{CLIENT} is not one of exp.spf.test's servers"
    # IPv6 client against ip6:
    assert postern_spf(postern_bin, conf, "ip6.spf.test", "2001:db8::5")[0] == "pass"
    # Authentication-Results with SPF and DMARC (no DMARC record: none)
    ar = postern(postern_bin, conf, "auth", "verify", "--ip", CLIENT, "--helo", HELO, "--sender",
                 "user@pass.spf.test", stdin=MSG).stdout.decode()
    assert "spf=pass (mx.auth.test: domain of user@pass.spf.test designates 192.0.2.10" in ar, ar
    assert "smtp.mailfrom=user@pass.spf.test" in ar and "arc=none" in ar, ar


def test_spf_temperror_with_dns_down(postern_bin, tmp_path):
    port = free_udp_port()
    conf = config_dir(tmp_path, port)
    # both wait out their DNS timeouts: run them side by side
    with ThreadPoolExecutor(1) as pool:
        theirs = pool.submit(pyspf, port, ["pass.spf.test"], CLIENT)
        ours = postern_spf(postern_bin, conf, "pass.spf.test")[0]
        assert ours == theirs.result()["pass.spf.test"][0] == "temperror"


def test_usage_and_bad_input(postern_bin, conf, tmp_path):
    r = postern(postern_bin, conf, "auth", "frobnicate", ok=False)
    assert r.returncode == 64 and r.stderr.startswith(b"postern: fatal: usage: postern auth"), r
    r = postern(postern_bin, conf, "auth", "spf", "--ip", "not-an-ip", ok=False)
    assert r.returncode == 64 and b"bad IP address" in r.stderr, r
    r = postern(postern_bin, None, "dkim", "keygen", "-b", "512", "-s", "x", "-d", "example.com",
                "-D", str(tmp_path), ok=False)
    assert r.returncode == 64, r
    # garbage and an oversized header: permerror, exit 0, no crash
    for junk in (b"\x00\xff garbage without header\n", b"X-Big: " + b"a" * (1024 * 1024 + 10) + b"\n\nb\n",
                 b"DKIM-Signature: v=1; a=rsa-sha256; b=!!!; bh=###\nFrom: a@example.com\n\nx\n"):
        r = postern(postern_bin, conf, "auth", "verify", stdin=junk)
        assert r.stdout.startswith(b"Authentication-Results: mx.auth.test;"), r


def test_dkimpy_arc_seal_verifies_in_postern(postern_bin, conf, keys):
    """An ARC set made by dkimpy (a forwarder relay.example, key krsa) verifies: arc=pass;
    a body changed after sealing breaks it. CRLF, as on the wire (dkimpy's relaxed
    canonicalisation keeps a bare LF of a folded header, so an LF seal is its own)."""
    rsa_pem = keys["krsa"][0].read_text()
    script = (
        "import sys, dkim\n"
        "raw = b'Authentication-Results: relay.example; spf=pass smtp.mailfrom=alice@example.com\\r\\n'"
        " + sys.stdin.buffer.read()\n"
        f"rsa = {rsa_pem.encode()!r}\n"
        "sig = dkim.arc_sign(raw, b'krsa', b'example.com', rsa, b'relay.example')\n"
        "assert len(sig) == 3, sig\n"
        "sys.stdout.buffer.write(b''.join(sig) + raw)\n")
    sealed = sys_python(script, MSG.replace(b"\n", b"\r\n")).encode()
    assert sealed.count(b"ARC-Seal: i=1;") == 1, sealed[:800]
    ar = postern(postern_bin, conf, "auth", "verify", "--ip", CLIENT, "--helo", HELO, "--sender",
                 "alice@example.com", stdin=sealed).stdout.decode()
    assert "arc=pass smtp.remote-ip=192.0.2.10" in ar, ar
    broken = sealed.replace(b"Hello Bob", b"Hello Eve")
    ar = postern(postern_bin, conf, "auth", "verify", "--ip", CLIENT, "--helo", HELO, stdin=broken).stdout.decode()
    assert "arc=pass" not in ar and re.search(r"arc=(fail|neutral|permerror)", ar), ar


def test_dmarc_results(postern_bin, conf, zone, keys):
    """DMARC from the From domain's policy: aligned SPF passes; unaligned, unsigned mail
    fails with the published policy; a DKIM signature of the From domain passes."""
    zone[("_dmarc.dmarc.test", "TXT")] = ["v=DMARC1; p=reject; adkim=r; aspf=r"]
    zone[("dmarc.test", "TXT")] = ["v=spf1 ip4:192.0.2.10 -all"]
    zone[("_dmarc.example.com", "TXT")] = ["v=DMARC1; p=quarantine"]
    msg = MSG.replace(b"alice@example.com", b"alice@dmarc.test")

    def verify(m: bytes, sender: str) -> str:
        return postern(postern_bin, conf, "auth", "verify", "--ip", CLIENT, "--helo", HELO,
                       "--sender", sender, stdin=m).stdout.decode()

    ar = verify(msg, "bounce@dmarc.test")
    assert "spf=pass" in ar and "dmarc=pass header.from=dmarc.test policy.dmarc=reject" in ar, ar
    ar = verify(msg, "bounce@other.example")
    assert "dmarc=fail" in ar and "header.from=dmarc.test policy.dmarc=reject" in ar, ar
    signed = postern(postern_bin, conf, "auth", "sign", "-s", "ked", "-d", "example.com", "-k",
                     str(keys["ked"][0]), stdin=MSG).stdout
    ar = verify(signed, "bounce@other.example")
    assert "dkim=pass" in ar and "dmarc=pass header.from=example.com policy.dmarc=quarantine" in ar, ar
    # at most 8 signatures are checked
    head = signed[:signed.index(MSG)]
    flood = b"".join(head.replace(b"s=ked", f"s=k{i}".encode()) for i in range(20)) + MSG
    ar = verify(flood, "bounce@other.example")
    assert ar.count("dkim=") == 8, ar
