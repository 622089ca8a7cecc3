"""The smtp client's TLS policy (issue 6 §3): security levels x server
certificates, smtp_tls_policy_maps, DANE (TLSA with and without the AD bit),
MTA-STS (HTTPS policy server on loopback :443) and the SASL client.

Certificates are minted here with openssl(1): a test CA; certificates for
mx.tls.test that are good, expired, self-signed, and one for another name.
Peers are small Python TLS SMTP servers (one per certificate); DNS comes from
dnsserver.py (its AD bit stands in for a validating resolver).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import base64
import http.server
from pathlib import Path

import pytest

from dnsserver import DnsServer
from postern import TEST_USER, free_port

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl(1) not installed")

MSG = b"From: snd@localhost\nSubject: tls test\n\nhello\n"
HOST = "mx.tls.test"
CERTS = ("good", "expired", "self", "wrong")


# --- certificates -------------------------------------------------------------

def _run(*argv, cwd=None):
    subprocess.run([str(a) for a in argv], check=True, capture_output=True, cwd=cwd)


def _ca_sign(d: Path, name: str, san: str, start: str | None = None, end: str | None = None) -> None:
    _run("openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", d / f"{name}.key",
         "-out", d / f"{name}.csr", "-subj", f"/CN={san}")
    (d / f"{name}.ext").write_text(f"subjectAltName=DNS:{san}\nextendedKeyUsage=serverAuth\n")
    dates = ["-startdate", start, "-enddate", end] if start else ["-days", "2"]
    _run("openssl", "ca", "-batch", "-config", d / "ca.cnf", "-in", d / f"{name}.csr",
         "-out", d / f"{name}.crt", "-extfile", d / f"{name}.ext", "-notext", *dates)


def mint(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o755)
    (d / "index.txt").write_text("")
    (d / "serial").write_text("1000\n")
    (d / "ca.cnf").write_text(f"""[ca]
default_ca = test
[test]
dir = {d}
database = {d}/index.txt
serial = {d}/serial
new_certs_dir = {d}
certificate = {d}/ca.crt
private_key = {d}/ca.key
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[anything]
commonName = supplied
""")
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d / "ca.key", "-out",
         d / "ca.crt", "-days", "3", "-subj", "/CN=Postern Test CA")
    _ca_sign(d, "good", HOST)
    _ca_sign(d, "expired", HOST, "20200101000000Z", "20200102000000Z")
    _ca_sign(d, "wrong", "other.test")
    _ca_sign(d, "mta-sts", "mta-sts.sts.test")
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d / "self.key",
         "-out", d / "self.crt", "-days", "2", "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=DNS:{HOST}")
    for f in d.iterdir():
        f.chmod(0o644)
    return d


def der(cert: Path) -> bytes:
    return subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"], check=True,
                          capture_output=True).stdout


def spki(cert: Path) -> bytes:
    pem = subprocess.run(["openssl", "x509", "-in", cert, "-pubkey", "-noout"], check=True,
                         capture_output=True).stdout
    return subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pem, check=True,
                          capture_output=True).stdout


@pytest.fixture(scope="module")
def certs():
    # Not under pytest's basetemp: another pytest session starting meanwhile resets
    # /tmp/pytest-of-root to 0700, and the instance's daemons (postern-test) must read
    # the CA file.
    base = Path(tempfile.mkdtemp(prefix="postern-tlscerts-"))
    base.chmod(0o755)
    try:
        yield mint(base / "pki")
    finally:
        shutil.rmtree(base, ignore_errors=True)


# --- peers ----------------------------------------------------------------------

class TlsPeer:
    """An SMTP server on 127.0.0.1 offering STARTTLS with one certificate,
    and AUTH PLAIN/LOGIN after STARTTLS when `password` is set."""

    def __init__(self, cert: Path, key: Path, password: str | None = None):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.password = password
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.messages = 0
        self.tls_sessions = 0
        self.auth: list[tuple[str, str]] = []
        self.sni: list[str | None] = []
        self.transcript: list[str] = []
        self._stop = False
        self.ctx.sni_callback = lambda s, name, c: self.sni.append(name) if name else None
        self.t = threading.Thread(target=self._serve, daemon=True)
        self.t.start()

    def _serve(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            with c:
                c.settimeout(10)
                try:
                    self._session(c)
                except (OSError, ValueError, ssl.SSLError):
                    pass

    def _session(self, c):
        f = c.makefile("rwb")
        tls = False

        def say(s):
            f.write(s.encode() + b"\r\n")
            f.flush()

        def line():
            l = f.readline()
            if not l:
                raise OSError("eof")
            return l.decode(errors="replace").rstrip("\r\n")

        say("220 peer.test ESMTP")
        while True:
            cmd = line()
            self.transcript.append(cmd if not cmd.upper().startswith("AUTH") else " ".join(cmd.split()[:2]))
            u = cmd.upper()
            if u.startswith("EHLO"):
                ext = "250-STARTTLS\r\n" if not tls else ""
                if tls and self.password is not None:
                    ext += "250-AUTH PLAIN LOGIN\r\n"
                say(f"250-peer.test\r\n{ext}250 8BITMIME")
            elif u == "STARTTLS" and not tls:
                say("220 2.0.0 Ready to start TLS")
                s = self.ctx.wrap_socket(c, server_side=True)
                self.tls_sessions += 1
                tls = True
                f = s.makefile("rwb")
            elif u.startswith("AUTH PLAIN"):
                raw = base64.b64decode(cmd.split()[2]).split(b"\0")
                self._check(f, say, raw[1].decode(), raw[2].decode())
            elif u == "AUTH LOGIN":
                say("334 VXNlcm5hbWU6")
                user = base64.b64decode(line()).decode()
                say("334 UGFzc3dvcmQ6")
                pw = base64.b64decode(line()).decode()
                self._check(f, say, user, pw)
            elif u == "DATA":
                say("354 go ahead")
                while f.readline() not in (b".\r\n", b""):
                    pass
                self.messages += 1
                say("250 2.0.0 Ok: queued")
            elif u == "QUIT":
                say("221 2.0.0 Bye")
                return
            else:
                say("250 2.0.0 Ok")

    def _check(self, f, say, user, pw):
        self.auth.append((user, pw))
        if pw == self.password:
            say("235 2.7.0 Authentication successful")
        else:
            say("535 5.7.8 Error: authentication failed: authentication failure")

    def close(self):
        self._stop = True
        self.t.join(timeout=5)
        self.sock.close()


@pytest.fixture
def peers(certs):
    ps = {name: TlsPeer(certs / f"{name}.crt", certs / f"{name}.key") for name in CERTS}
    yield ps
    for p in ps.values():
        p.close()


# --- helpers --------------------------------------------------------------------

def setup(instance, certs: Path, zone: dict, *settings: str, ad=True, routes: dict | None = None):
    """DNS on loopback, transport routes (domain -> nexthop), main.cf settings."""
    dns = DnsServer(zone, ad=ad)
    dns_port = dns.__enter__()
    tdir = instance.base / "maps"
    tdir.mkdir(exist_ok=True)
    tdir.chmod(0o755)
    transport = tdir / "transport"
    transport.write_text("".join(f"{d} smtp:{nh}\n" for d, nh in (routes or {}).items()))
    transport.chmod(0o644)
    instance.run("postconf", "-e", f"dns_servers = 127.0.0.1:{dns_port}",
                 f"transport_maps = texthash:{transport}", f"smtp_tls_CAfile = {certs / 'ca.crt'}",
                 "smtp_tls_loglevel = 1", "minimal_backoff_time = 300s", "maximal_backoff_time = 4000s",
                 *settings)
    return dns


def send(instance, *rcpts: str):
    instance.start()
    for r in rcpts:
        instance.sendmail(["-f", "snd@localhost", r], MSG)
    instance.wait_for(lambda: sum(("status=" in l and "to=<" in l) for l in instance.log().splitlines())
                      >= len(rcpts), what=f"{len(rcpts)} delivery results")


def status(instance, rcpt: str) -> str:
    lines = [l for l in instance.log().splitlines() if f"to=<{rcpt}>" in l and "status=" in l]
    assert lines, instance.log()
    return lines[0]


def matrix_routes(peers) -> dict:
    return {f"{name}.test": f"[{HOST}]:{p.port}" for name, p in peers.items()}


ZONE = {(HOST, "A"): ["127.0.0.1"]}


def run_matrix(instance, certs, peers, level: str, *extra: str) -> dict[str, str]:
    dns = setup(instance, certs, dict(ZONE), f"smtp_tls_security_level = {level}", *extra,
                routes=matrix_routes(peers))
    try:
        send(instance, *(f"u@{name}.test" for name in CERTS))
    finally:
        dns.close()
    return {name: status(instance, f"u@{name}.test") for name in CERTS}


# --- security levels x certificates ----------------------------------------------

@pytest.mark.parametrize("level", ["may", "encrypt"])
def test_unverified_levels_deliver_with_any_certificate(instance, certs, peers, level):
    res = run_matrix(instance, certs, peers, level)
    for name in CERTS:
        assert "status=sent" in res[name], res[name]
        assert peers[name].tls_sessions == 1 and peers[name].messages == 1
    log = instance.log()
    for name in ("good", "wrong"):  # CA-signed: trusted, no name check at these levels
        assert (f"Trusted TLS connection established to {HOST}[127.0.0.1]:{peers[name].port}: "
                "TLSv1.3 with cipher TLS_") in log, log
    for name in ("expired", "self"):
        assert f"Untrusted TLS connection established to {HOST}[127.0.0.1]:{peers[name].port}" in log, log
    assert "certificate verification failed" not in log, "not logged when the level does not check trust"
    assert not [p for p in peers.values() if p.sni], "no SNI without DANE or servername"


@pytest.mark.parametrize("level", ["verify", "secure"])
def test_verified_levels(instance, certs, peers, level):
    res = run_matrix(instance, certs, peers, level)
    assert "status=sent" in res["good"], res["good"]
    for name in ("expired", "self"):
        assert "dsn=4.7.5, status=deferred (Server certificate not trusted)" in res[name], res[name]
        assert peers[name].messages == 0
    assert "dsn=4.7.5, status=deferred (Server certificate not verified)" in res["wrong"], res["wrong"]
    log = instance.log()
    p = {n: f"{HOST}[127.0.0.1]:{peers[n].port}" for n in CERTS}
    assert f"Verified TLS connection established to {p['good']}: TLSv1.3" in log, log
    assert f"Trusted TLS connection established to {p['wrong']}" in log, log
    assert f"server certificate verification failed for {p['expired']}: certificate has expired" in log, log
    assert f"certificate verification failed for {p['self']}: self-signed certificate" in log, log


def test_untrusted_without_ca_file(instance, certs, peers):
    """verify without the test CA: the system store does not know it."""
    res = run_matrix(instance, certs, peers, "verify", "smtp_tls_CAfile =")
    assert "status=deferred (Server certificate not trusted)" in res["good"], res["good"]
    assert f"untrusted issuer /CN=Postern Test CA" in instance.log()


def test_fingerprint_level(instance, certs, peers):
    fp = hashlib.sha256(der(certs / "self.crt")).hexdigest()
    colons = ":".join(fp[i:i + 2] for i in range(0, len(fp), 2)).upper()
    pk = hashlib.sha256(spki(certs / "expired.crt")).hexdigest()
    res = run_matrix(instance, certs, peers, "fingerprint", f"smtp_tls_fingerprint_cert_match = {colons} {pk}",
                     "smtp_tls_fingerprint_digest = sha256")
    assert "status=sent" in res["self"], res["self"]
    assert "status=sent" in res["expired"], "public-key fingerprint, dates ignored: " + res["expired"]
    for name in ("good", "wrong"):
        assert "status=deferred (Server certificate not verified)" in res[name], res[name]
    assert f"Verified TLS connection established to {HOST}[127.0.0.1]:{peers['self'].port}" in instance.log()


def test_policy_maps_per_destination(instance, certs, peers):
    """Global may; the table makes good.test secure, wrong.test verify with a
    match= that names the certificate's name, self.test fingerprint, and
    expired.test an invalid entry (client TLS configuration problem)."""
    fp = hashlib.sha256(der(certs / "self.crt")).hexdigest()
    routes = matrix_routes(peers)
    pol = instance.base / "maps" / "tls_policy"
    (instance.base / "maps").mkdir(exist_ok=True)
    pol.write_text(f"{routes['good.test']} secure match=nexthop protocols=>=TLSv1.2\n"
                   f"{routes['wrong.test']} verify match=other.test\n"
                   f"{routes['self.test']} fingerprint match={fp}\n"
                   f"{routes['expired.test']} verify bogus=1\n")
    pol.chmod(0o644)
    res = run_matrix(instance, certs, peers, "may", f"smtp_tls_policy_maps = texthash:{pol}")
    assert "status=sent" in res["good"] and "status=sent" in res["wrong"] and "status=sent" in res["self"], res
    assert "dsn=4.7.5, status=deferred (client TLS configuration problem)" in res["expired"], res["expired"]
    assert 'invalid attribute name: "bogus"' in instance.log()
    assert f"Verified TLS connection established to {HOST}[127.0.0.1]:{peers['wrong'].port}" in instance.log()


def test_tls13_only_protocols(instance, certs, peers):
    res = run_matrix(instance, certs, peers, "encrypt", "smtp_tls_mandatory_protocols = >=TLSv1.3")
    assert all("status=sent" in r for r in res.values()), res
    assert "TLSv1.3 with cipher" in instance.log()


def test_protocol_list_without_usable_version_defers(instance, certs, peers):
    res = run_matrix(instance, certs, peers, "encrypt", "smtp_tls_mandatory_protocols = <=TLSv1.1")
    assert "status=deferred (client TLS configuration problem)" in res["good"], res["good"]


def test_loglevel_0_logs_no_summary(instance, certs, peers):
    res = run_matrix(instance, certs, peers, "may", "smtp_tls_loglevel = 0")
    assert all("status=sent" in r for r in res.values()), res
    assert "TLS connection established" not in instance.log()


# --- DANE -----------------------------------------------------------------------

def tlsa(certs: Path, name: str, usage=3, selector=1, mtype=1) -> str:
    data = spki(certs / f"{name}.crt") if selector == 1 else der(certs / f"{name}.crt")
    h = data.hex() if mtype == 0 else hashlib.sha256(data).hexdigest() if mtype == 1 else hashlib.sha512(data).hexdigest()
    return f"{usage} {selector} {mtype} {h}"


def dane_zone(peers, records: dict[str, list[str]]) -> dict:
    z = dict(ZONE)
    for name, recs in records.items():
        z[(f"_{peers[name].port}._tcp.{HOST}", "TLSA")] = recs
    return z


def run_dane(instance, certs, peers, level, records, ad=True):
    dns = setup(instance, certs, dane_zone(peers, records), f"smtp_tls_security_level = {level}",
                "smtp_dns_support_level = dnssec", "smtp_tls_CAfile =", ad=ad, routes=matrix_routes(peers))
    try:
        send(instance, *(f"u@{name}.test" for name in CERTS))
    finally:
        dns.close()
    return {name: status(instance, f"u@{name}.test") for name in CERTS}


def test_dane_ee_ta_and_fallbacks(instance, certs, peers):
    recs = {
        "self": [tlsa(certs, "self", 3, 1, 1)],                      # DANE-EE SPKI SHA-256
        "expired": [tlsa(certs, "expired", 3, 0, 2)],                # DANE-EE cert SHA-512: dates ignored
        "wrong": ["3 1 1 " + "00" * 32],                             # digest mismatch
        "good": ["1 1 1 " + hashlib.sha256(spki(certs / "good.crt")).hexdigest()],  # PKIX-EE: unusable
    }
    res = run_dane(instance, certs, peers, "dane", recs)
    assert "status=sent" in res["self"] and "status=sent" in res["expired"], res
    assert "dsn=4.7.5, status=deferred (Server certificate not verified)" in res["wrong"], res["wrong"]
    assert "status=sent" in res["good"], "unusable TLSA: encrypt " + res["good"]
    log = instance.log()
    for name in ("self", "expired"):
        assert f"Verified TLS connection established to {HOST}[127.0.0.1]:{peers[name].port}" in log, log
        assert peers[name].sni == [HOST], "SNI is the TLSA base domain with DANE"
    assert f"Untrusted TLS connection established to {HOST}[127.0.0.1]:{peers['good'].port}" in log


def test_dane_ta_with_chain(instance, certs, tmp_path):
    """DANE-TA(2): the server sends its CA; the chain must lead to it and the
    name must be the MX host."""
    chain = tmp_path / "chain.crt"
    chain.write_bytes((certs / "good.crt").read_bytes() + (certs / "ca.crt").read_bytes())
    wrong_chain = tmp_path / "wchain.crt"
    wrong_chain.write_bytes((certs / "wrong.crt").read_bytes() + (certs / "ca.crt").read_bytes())
    ps = {"good": TlsPeer(chain, certs / "good.key"), "wrong": TlsPeer(wrong_chain, certs / "wrong.key")}
    try:
        ta = tlsa(certs, "ca", 2, 0, 1)
        z = dict(ZONE)
        for p in ps.values():
            z[(f"_{p.port}._tcp.{HOST}", "TLSA")] = [ta]
        dns = setup(instance, certs, z, "smtp_tls_security_level = dane", "smtp_tls_CAfile =",
                    routes={f"{n}.test": f"[{HOST}]:{p.port}" for n, p in ps.items()})
        try:
            send(instance, "u@good.test", "u@wrong.test")
        finally:
            dns.close()
    finally:
        for p in ps.values():
            p.close()
    assert "status=sent" in status(instance, "u@good.test")
    assert "status=deferred (Server certificate not verified)" in status(instance, "u@wrong.test")


def test_dane_without_ad_bit_is_may_and_dane_only_defers(instance, certs, peers):
    recs = {name: [tlsa(certs, name)] for name in CERTS}
    res = run_dane(instance, certs, peers, "dane", recs, ad=False)
    assert all("status=sent" in r for r in res.values()), res
    assert "Verified TLS" not in instance.log(), "unvalidated TLSA records are ignored"


def test_dane_only(instance, certs, peers):
    recs = {"self": [tlsa(certs, "self")], "good": ["0 0 1 " + "00" * 32]}
    res = run_dane(instance, certs, peers, "dane-only", recs)
    assert "status=sent" in res["self"], res["self"]
    assert "dsn=4.7.5, status=deferred (TLSA records unusable)" in res["good"], res["good"]
    for name in ("expired", "wrong"):
        assert "dsn=4.7.5, status=deferred (no TLSA records found)" in res[name], res[name]
        assert peers[name].tls_sessions == 0


# --- MTA-STS ----------------------------------------------------------------------

class PolicyServer:
    """HTTPS on 127.0.0.9:443 serving /.well-known/mta-sts.txt."""

    def __init__(self, certs: Path, body: str):
        outer = self
        self.hits = 0

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                if self.path != "/.well-known/mta-sts.txt":
                    self.send_error(404)
                    return
                data = outer.body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.body = body
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.9", 443), H)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certs / "mta-sts.crt", certs / "mta-sts.key")
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.t = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.t.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def policy_server(certs):
    if os.geteuid() != 0:
        pytest.skip("the MTA-STS policy server needs port 443 (root)")
    try:
        srv = PolicyServer(certs, "")
    except OSError as e:
        pytest.skip(f"127.0.0.9:443 unavailable: {e}")
    yield srv
    srv.close()


def sts_zone(mx_host: str, peer_port: int) -> dict:
    return {
        ("sts.test", "MX"): [f"10 {mx_host}"],
        (mx_host, "A"): ["127.0.0.1"],
        ("_mta-sts.sts.test", "TXT"): ["v=STSv1; id=20260101;"],
        ("mta-sts.sts.test", "A"): ["127.0.0.9"],
    }


def run_sts(instance, certs, peer, mx_host, body, policy_server):
    policy_server.body = body
    cache = instance.base / "sts-cache"
    dns = setup(instance, certs, sts_zone(mx_host, peer.port), "smtp_mta_sts_enable = yes",
                f"smtp_mta_sts_cache_directory = {cache}", "smtp_tls_security_level = may",
                routes={"sts.test": f"sts.test:{peer.port}"})
    try:
        send(instance, "u@sts.test")
    finally:
        dns.close()
    return status(instance, "u@sts.test"), cache


ENFORCE = "version: STSv1\r\nmode: enforce\r\nmx: {mx}\r\nmax_age: 86400\r\n"


def test_mta_sts_enforce_verified_delivery_and_cache(instance, certs, peers, policy_server):
    line, cache = run_sts(instance, certs, peers["good"], HOST, ENFORCE.format(mx="*.tls.test"), policy_server)
    assert "status=sent" in line, line
    assert f"Verified TLS connection established to {HOST}[127.0.0.1]:{peers['good'].port}" in instance.log()
    assert peers["good"].sni == [HOST]
    cached = (cache / "sts.test").read_text()
    assert cached.startswith("postern-mta-sts 1 20260101 ") and "mode: enforce" in cached
    assert policy_server.hits == 1


def test_mta_sts_enforce_bad_certificate_defers(instance, certs, peers, policy_server):
    line, _ = run_sts(instance, certs, peers["wrong"], HOST, ENFORCE.format(mx=HOST), policy_server)
    assert "dsn=4.7.5, status=deferred (Server certificate not verified)" in line, line
    assert peers["wrong"].messages == 0


def test_mta_sts_enforce_unlisted_mx_defers(instance, certs, peers, policy_server):
    line, _ = run_sts(instance, certs, peers["good"], HOST, ENFORCE.format(mx="mx.elsewhere.test"), policy_server)
    assert f"status=deferred (MX host {HOST} is not listed in the MTA-STS policy of sts.test)" in line, line


def test_mta_sts_testing_only_logs(instance, certs, peers, policy_server):
    body = ENFORCE.format(mx=HOST).replace("enforce", "testing")
    line, _ = run_sts(instance, certs, peers["wrong"], HOST, body, policy_server)
    assert "status=sent" in line, line
    assert "MTA-STS policy (testing) of sts.test: server certificate of" in instance.log()


# --- SASL -------------------------------------------------------------------------

def run_sasl(instance, certs, peer, *settings, password="s3cret-pw"):
    maps = instance.base / "maps"
    maps.mkdir(exist_ok=True)
    maps.chmod(0o755)
    pw = maps / "sasl_passwd"
    pw.write_text(f"[{HOST}]:{peer.port} relayuser:{password}\n")
    pw.chmod(0o644)
    dns = setup(instance, certs, dict(ZONE), "smtp_tls_security_level = encrypt", "smtp_sasl_auth_enable = yes",
                f"smtp_sasl_password_maps = texthash:{pw}", *settings,
                routes={"auth.test": f"[{HOST}]:{peer.port}"})
    try:
        send(instance, "u@auth.test")
    finally:
        dns.close()
    return status(instance, "u@auth.test")


@pytest.mark.parametrize("mech", ["plain", "login"])
def test_sasl_login_over_tls(instance, certs, mech):
    peer = TlsPeer(certs / "good.crt", certs / "good.key", password="s3cret-pw")
    try:
        line = run_sasl(instance, certs, peer, "smtp_sasl_security_options = noanonymous",
                        f"smtp_sasl_mechanism_filter = {mech}")
    finally:
        peer.close()
    assert "status=sent" in line, line
    assert peer.auth == [("relayuser", "s3cret-pw")]
    assert any(c.startswith("MAIL FROM:<snd@localhost> AUTH=<>") for c in peer.transcript), peer.transcript
    assert "s3cret-pw" not in instance.log()


def test_sasl_wrong_password_defers(instance, certs):
    peer = TlsPeer(certs / "good.crt", certs / "good.key", password="other")
    try:
        line = run_sasl(instance, certs, peer, "smtp_sasl_security_options = noanonymous")
    finally:
        peer.close()
    assert (f"dsn=4.7.8, status=deferred (SASL authentication failed; server {HOST}[127.0.0.1] said: "
            "535 5.7.8 Error: authentication failed: authentication failure)") in line, line
    assert peer.messages == 0
    assert "s3cret-pw" not in instance.log()


def test_sasl_default_security_options_refuse_plaintext_mechanisms(instance, certs):
    peer = TlsPeer(certs / "good.crt", certs / "good.key", password="s3cret-pw")
    try:
        line = run_sasl(instance, certs, peer)
    finally:
        peer.close()
    assert (f"dsn=4.7.0, status=deferred (SASL authentication failed; cannot authenticate to server "
            f"{HOST}[127.0.0.1]: no mechanism available)") in line, line
    assert peer.auth == []
