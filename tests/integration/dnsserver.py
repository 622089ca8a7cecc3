"""dnsserver.py -- a tiny loopback DNS server for the integration tests.

Standard library only: the DNS wire format (RFC 1035) is encoded by hand with
`struct`. UDP only (answers are kept small). It runs in a thread:

    zone = {
        ("example.test", "MX"): [(10, "mx.example.test")],   # or "10 mx.example.test"
        ("mx.example.test", "A"): ["192.0.2.1"],
        ("2.0.0.127.zen.test", "A"): ["127.0.0.2"],
        ("2.0.0.127.zen.test", "TXT"): ["Listed, see https://zen.test/"],
        ("1.2.0.192.in-addr.arpa", "PTR"): ["host.example.test"],
        ("broken.test", "A"): DnsServer.SERVFAIL,             # answer SERVFAIL
        ("slow.test", "A"): DnsServer.TIMEOUT,                # never answer
    }
    with DnsServer(zone) as port:
        ...   # dns_servers = 127.0.0.1:<port>

Names are case-insensitive, trailing dots optional. A name with no entry at all
gets NXDOMAIN; a name with entries of other types gets NODATA (NOERROR, empty).
A `CNAME` entry answers every type with the CNAME plus the target's records.
Supported types: A, AAAA, MX, PTR, CNAME, NS, TXT (a string, or a list of
strings for one record's character-strings), TLSA (`"3 1 1 <hex>"` or a tuple
`(usage, selector, mtype, hexdata)`). `server.queries` lists every
`(name, type)` asked; the zone dict may be changed while the server runs.

DNSSEC stand-in: `DnsServer(zone, ad=True)` sets the AD ("authentic data") bit
in every answer, as a validating resolver would for a signed zone;
`ad={"name", ...}` sets it only for those owner names (others look unsigned).
`server.ad` may be changed while the server runs.
"""

from __future__ import annotations

import socket
import struct
import threading

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "TLSA": 52,
         "ANY": 255}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
NOERROR, SERVFAIL_RCODE, NXDOMAIN = 0, 2, 3
CLASS_IN = 1
TTL = 60
MAX_UDP = 1232


def _key(name: str) -> str:
    return name.rstrip(".").lower()


def encode_name(name: str) -> bytes:
    """Uncompressed wire form of a domain name ("." is the root)."""
    out = b""
    for label in _key(name).split(".") if _key(name) else []:
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad label in {name!r}")
        out += bytes([len(raw)]) + raw
    return out + b"\x00"


def decode_name(msg: bytes, off: int) -> tuple[str, int]:
    """Reads a (possibly compressed) name at `off`; returns (name, offset after it)."""
    labels: list[str] = []
    end = None
    for _ in range(128):  # bounds pointer loops
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if end is None:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            continue
        if n == 0:
            return ".".join(labels), (end if end is not None else off + 1)
        labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n
    raise ValueError("name too long or looping")


def _char_strings(data: str | list[str] | tuple[str, ...]) -> bytes:
    parts = [data] if isinstance(data, str) else list(data)
    out = b""
    for p in parts:
        raw = p.encode()
        if not raw:
            out += b"\x00"
        while raw:
            out += bytes([len(raw[:255])]) + raw[:255]
            raw = raw[255:]
    return out


def encode_rdata(rtype: str, data) -> bytes:
    if rtype == "A":
        return socket.inet_pton(socket.AF_INET, data)
    if rtype == "AAAA":
        return socket.inet_pton(socket.AF_INET6, data)
    if rtype == "MX":
        if isinstance(data, str):
            pref, host = data.split(None, 1)
        else:
            pref, host = data
        return struct.pack("!H", int(pref)) + encode_name(host)
    if rtype in ("PTR", "CNAME", "NS"):
        return encode_name(data)
    if rtype == "TXT":
        return _char_strings(data)
    if rtype == "TLSA":
        if isinstance(data, str):
            usage, selector, mtype, hexdata = data.split(None, 3)
        else:
            usage, selector, mtype, hexdata = data
        return struct.pack("!BBB", int(usage), int(selector), int(mtype)) + bytes.fromhex("".join(str(hexdata).split()))
    raise ValueError(f"unsupported record type {rtype}")


def _rr(name: str, rtype: str, data) -> bytes:
    rdata = encode_rdata(rtype, data)
    return encode_name(name) + struct.pack("!HHIH", TYPES[rtype], CLASS_IN, TTL, len(rdata)) + rdata


class DnsServer:
    """A UDP DNS server on 127.0.0.1 serving `zone`; a context manager giving its port."""

    SERVFAIL = "SERVFAIL"
    TIMEOUT = "TIMEOUT"

    def __init__(self, zone: dict, host: str = "127.0.0.1", port: int = 0, ad: bool | set | frozenset = False):
        self.zone = zone
        self.ad = ad
        self.queries: list[tuple[str, str]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"dnsserver:{self.port}", daemon=True)

    def __enter__(self) -> int:
        self._thread.start()
        return self.port

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.sock.close()

    def _lookup(self, name: str, rtype: str):
        """(rcode, [(owner, type, data)]) or None to stay silent."""
        entries = {t: v for (n, t), v in self.zone.items() if _key(n) == name}
        if not entries:
            return NXDOMAIN, []
        for special in (self.TIMEOUT, self.SERVFAIL):
            if entries.get(rtype) == special or entries.get("*") == special:
                return None if special == self.TIMEOUT else (SERVFAIL_RCODE, [])
        answers = [(name, rtype, d) for d in entries.get(rtype, []) if rtype != "ANY"]
        if not answers and rtype != "CNAME" and "CNAME" in entries and isinstance(entries["CNAME"], list):
            target = entries["CNAME"][0]
            answers = [(name, "CNAME", target)]
            sub = self._lookup(_key(target), rtype)
            if sub is None:
                return None
            answers += sub[1]
        return NOERROR, answers

    def handle(self, req: bytes) -> bytes | None:
        if len(req) < 12:
            return None
        qid, flags, qdcount = struct.unpack("!HHH", req[:6])
        if flags & 0x8000 or qdcount != 1:  # a response, or not one question
            return None
        qname, off = decode_name(req, 12)
        qtype_num, _qclass = struct.unpack("!HH", req[off:off + 4])
        question = req[12:off + 4]
        qtype = TYPE_NAMES.get(qtype_num, str(qtype_num))
        self.queries.append((_key(qname), qtype))
        result = self._lookup(_key(qname), qtype)
        if result is None:
            return None
        rcode, answers = result
        body = b"".join(_rr(n, t, d) for n, t, d in answers)
        rflags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | rcode  # QR AA RD(copied) RA
        if self.ad is True or (isinstance(self.ad, (set, frozenset)) and _key(qname) in self.ad):
            rflags |= 0x0020  # AD: "validated" (a stand-in for a DNSSEC-validating resolver)
        if 12 + len(question) + len(body) > MAX_UDP:
            rflags |= 0x0200  # TC: we do not serve TCP, keep zones small
            answers, body = [], b""
        header = struct.pack("!HHHHHH", qid, rflags, 1, len(answers), 0, 0)
        return header + question + body

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                req, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                out = self.handle(req)
            except (ValueError, IndexError, struct.error):
                out = None  # malformed query: ignore it, as a server may
            if out is not None:
                try:
                    self.sock.sendto(out, peer)
                except OSError:
                    pass


def query(port: int, name: str, rtype: str = "A", timeout: float = 2.0) -> tuple[int, list[tuple[str, bytes]]]:
    """A minimal client for checking the server: (rcode, [(type, rdata bytes)])."""
    qid = 0x4242
    req = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + encode_name(name) + struct.pack("!HH", TYPES[rtype], CLASS_IN)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(req, ("127.0.0.1", port))
        resp, _ = s.recvfrom(4096)
    rid, flags, _qd, ancount, _ns, _ar = struct.unpack("!HHHHHH", resp[:12])
    assert rid == qid
    _, off = decode_name(resp, 12)
    off += 4
    out = []
    for _ in range(ancount):
        _, off = decode_name(resp, off)
        t, _c, _ttl, rdlen = struct.unpack("!HHIH", resp[off:off + 10])
        off += 10
        out.append((TYPE_NAMES.get(t, str(t)), resp[off:off + rdlen]))
        off += rdlen
    return flags & 0x000F, out
