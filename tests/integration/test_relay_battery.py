"""The open-relay battery (issue 10): relay tricks from a client outside mynetworks,
Postern and Debian's Postfix 3.7 side by side with the same main.cf settings.

Each configuration variant (relay-restriction forms, routing switches, mynetworks_style)
is applied to one Postern instance (`postern postconf -e/-X` + `postern reload`) and one
private Postfix instance (`postconf -c DIR -e/-X` + `postfix reload`); a banner marker
proves that the new smtpd answers. Per variant, one SMTP session from 127.0.0.2
(mynetworks = 127.0.0.1/32; for the subnet/class styles, which trust 127.0.0.0/8, the
session first moves itself outside with XCLIENT ADDR=198.51.100.9) sends MAIL and every
probe as a RCPT; when Postern accepted any, the message is sent (DATA), so that a relay
would really happen. Postern's relayhost is a scripted sink that counts every message
reaching it.

Asserted: the sink receives nothing, and every RCPT reply is Postfix's, byte for byte,
except the justified differences listed in KNOWN_DIFFERENCES. A summary line (probes,
accepted, relayed, identical) is printed (`pytest -s` shows it).

A second test compares VRFY (252 for a deliverable address, 550 5.1.1 for an unknown one,
502 when disabled) and the fail-closed answers for broken tables (local_recipient_maps,
virtual_alias_maps, relay_recipient_maps: 451 4.3.0 Temporary lookup failure; an access
table: 451 4.3.5; an unknown restriction word: 451 4.3.5), and checks that restriction
words Postern does not implement are refused like unknown words, never ignored.

Needs root (Postfix's master runs as root) and /usr/sbin/postfix; skipped otherwise.
Every process is stopped by PID; every wait is bounded.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from test_postfix_peer import POSTFIX, PostfixPeer
from test_smtp_client import Peer, wait_queue_empty
from postern import free_port

pytestmark = [
    pytest.mark.skipif(not POSTFIX.exists(), reason="Debian's Postfix is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="a private Postfix instance needs root"),
]

HOST = "mx.test.example"
CLIENT = "127.0.0.2"
OUTSIDE = "198.51.100.9"

PROBES = [
    f"user@{HOST}",
    f"nosuch@{HOST}",
    "user@other.example",
    f"user%other.example@{HOST}",
    f"other.example!user@{HOST}",
    f'"user@other.example"@{HOST}',
    f'"user%other.example"@{HOST}',
    f"@{HOST}:user@other.example",
    f"@other.example:user@{HOST}",
    "user@[127.0.0.1]",
    "user@[127.0.0.2]",
    "user@[192.0.2.2]",
    "user@[IPv6:::1]",
    "user@[198.51.100.1]",
    f"user@{HOST}.",
    f"user@{HOST.upper()}",
    f"user@{HOST}@other.example",
    "user%other.example@relay.example",
    "user@relay.example",
    "user@sub.relay.example",
    "user%other.example",
    "other.example!user",
    "user@other.example.",
    "user@localhost",
    f"user%other.example%{HOST}@{HOST}",
    f"a!b!user@{HOST}",
    "user%other.example@[127.0.0.1]",
    "other.example!user@[127.0.0.1]",
    f'""@{HOST}',
    "user@",
    "user@127.0.0.1",
    "user@[999.1.1.1]",
    f"USER@{HOST}",
]

# Settings every variant starts from (main.cf of both MTAs).
COMMON = {
    "compatibility_level": "3.6",
    "myhostname": HOST,
    "mydomain": "test.example",
    "myorigin": "$myhostname",
    "mydestination": "$myhostname, localhost",
    "inet_protocols": "all",
    "local_recipient_maps": "inline:{ user=yes, probe=yes }",
    "alias_maps": "",
    "smtpd_authorized_xclient_hosts": "127.0.0.0/8",
    "smtpd_helo_required": "no",
    # No postmaster transcripts of the probes' 451s (both MTAs), so that no notice is
    # in delivery when the next variant reloads.
    "notify_classes": "",
    "smtpd_hard_error_limit": "1000",
    "smtpd_soft_error_limit": "1000",
    "smtpd_error_sleep_time": "0",
}
# The parameters variants change, with the value they have otherwise (None = unset).
BASE = {
    "mynetworks": "127.0.0.1/32",
    "mynetworks_style": None,
    "inet_interfaces": "loopback-only",
    "relay_domains": "relay.example",
    "smtpd_relay_restrictions": None,
    "smtpd_recipient_restrictions": None,
    "allow_percent_hack": None,
    "swap_bangpath": None,
    "resolve_dequoted_address": None,
}
# (name, overrides, client moves outside with XCLIENT)
VARIANTS = [
    ("default", {}, False),
    ("recipient-only", {"smtpd_relay_restrictions": "",
                        "smtpd_recipient_restrictions": "permit_mynetworks, reject_unauth_destination"}, False),
    ("check_relay_domains", {"smtpd_relay_restrictions": "permit_mynetworks, check_relay_domains"}, False),
    ("mynetworks-only", {"smtpd_relay_restrictions": "permit_mynetworks, reject"}, False),
    ("relay=mydestination", {"relay_domains": "$mydestination",
                             "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination"}, False),
    ("no-percent-hack", {"allow_percent_hack": "no"}, False),
    ("no-bang-no-dequote", {"swap_bangpath": "no", "resolve_dequoted_address": "no"}, False),
    ("style-host", {"mynetworks": None, "mynetworks_style": "host"}, False),
    ("style-subnet", {"mynetworks": None, "mynetworks_style": "subnet"}, True),
    ("style-class-all", {"mynetworks": None, "mynetworks_style": "class", "inet_interfaces": "all"}, True),
]

# (variant or "*", probe) -> why Postern's answer differs from Postfix's. Keep it short.
KNOWN_DIFFERENCES: dict[tuple[str, str], str] = {
    # None: `user@host@other` and `""@host` are parsed as Postfix does (issue 13).
}
# Recipients a variant may legitimately relay (relay_domains = relay.example).
AUTHORIZED = ("user@relay.example", "user@sub.relay.example")


def settings(overrides: dict) -> tuple[list[str], list[str]]:
    """`name=value` to set and names to remove for a variant."""
    values = {**BASE, **overrides}
    sets = [f"{k}={v}" for k, v in values.items() if v is not None]
    unset = [k for k, v in values.items() if v is None]
    return sets, unset


class Session:
    """A line-level SMTP client bound to a chosen source address."""

    def __init__(self, port: int, source: str = CLIENT):
        self.s = socket.create_connection(("127.0.0.1", port), source_address=(source, 0), timeout=15)
        self.f = self.s.makefile("rwb")
        self.greeting = self.read()

    def read(self) -> str:
        lines = []
        while True:
            line = self.f.readline().decode(errors="replace").rstrip("\r\n")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return "\n".join(lines)

    def cmd(self, line: str) -> str:
        self.f.write(line.encode() + b"\r\n")
        self.f.flush()
        return self.read()

    def close(self) -> None:
        try:
            self.cmd("QUIT")
        except OSError:
            pass
        self.s.close()


def run_probes(port: int, xclient: bool, send: bool) -> tuple[list[str], str | None]:
    """One session: EHLO (XCLIENT), MAIL, each probe; DATA when `send` and any was accepted."""
    s = Session(port)
    try:
        s.cmd("EHLO client.example")
        if xclient:
            r = s.cmd(f"XCLIENT NAME=[UNAVAILABLE] ADDR={OUTSIDE}")
            assert r.startswith("220"), r
            s.cmd("EHLO client.example")
        r = s.cmd(f"MAIL FROM:<probe@{HOST}>")
        assert r.startswith("250"), r
        replies = [s.cmd(f"RCPT TO:<{p}>") for p in PROBES]
        final = None
        if send and any(r.startswith("250") for r in replies):
            r = s.cmd("DATA")
            assert r.startswith("354"), r
            final = s.cmd(f"From: probe@{HOST}\r\nSubject: relay battery\r\n\r\nprobe\r\n.")
        return replies, final
    finally:
        s.close()


def trusted_probe(port: int) -> str:
    """From 127.0.0.2 without XCLIENT: is the client in mynetworks? (RSET, no mail)."""
    s = Session(port)
    try:
        s.cmd("EHLO client.example")
        s.cmd(f"MAIL FROM:<probe@{HOST}>")
        return s.cmd("RCPT TO:<user@other.example>")
    finally:
        s.close()


def wait_banner(port: int, marker: str, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            s = Session(port)
            last = s.greeting
            s.close()
            if marker in last:
                return
        except OSError as e:
            last = repr(e)
        time.sleep(0.1)
    raise AssertionError(f"{what}: smtpd with banner {marker!r} not answering (last: {last!r})")


class PostfixSmtpd(PostfixPeer):
    """A private Postfix with one smtpd on 127.0.0.1:port (no relay attempted: probes only)."""

    def __init__(self, port: int, relayhost: str):
        super().__init__(relayhost)
        self.port = port

    def _master_cf(self) -> str:
        return super()._master_cf() + f"127.0.0.1:{self.port} inet n - n - - smtpd\n"

    def postconf(self, *args: str) -> None:
        r = subprocess.run(["postconf", "-c", str(self.conf), *args], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, f"postconf {args}: {r.stderr}"


def configure(pf: PostfixSmtpd, inst, name: str, overrides: dict, first: bool) -> None:
    sets, unset = settings(overrides)
    banner = f"smtpd_banner=$myhostname ESMTP battery-{name}"
    pf.postconf("-e", *sets, banner)
    inst.run("postconf", "-e", *sets, banner)
    if unset:
        pf.postconf("-X", *unset)
        inst.run("postconf", "-X", *unset)
    if first:
        pf.start()
        inst.start()
    else:
        pf.postfix("reload")
        inst.reload()
    marker = f"battery-{name}"
    wait_banner(pf.port, marker, "Postfix")
    wait_banner(inst.port, marker, "Postern")


def test_relay_battery(instance):
    sink = Peer()
    pf = PostfixSmtpd(free_port(), f"[127.0.0.1]:{sink.port}")
    inst = instance
    results: list[tuple[str, str, str, str]] = []
    trusted: list[tuple[str, str, str]] = []
    finals: list[tuple[str, str | None]] = []
    t0 = time.monotonic()
    try:
        pf.setup()
        pf.postconf("-e", *[f"{k}={v}" for k, v in COMMON.items()])
        inst.run("postconf", "-e", *[f"{k}={v}" for k, v in COMMON.items()],
                 f"relayhost=[127.0.0.1]:{sink.port}")
        first = True
        for name, overrides, xclient in VARIANTS:
            configure(pf, inst, name, overrides, first)
            first = False
            theirs, _ = run_probes(pf.port, xclient, send=False)
            ours, final = run_probes(inst.port, xclient, send=True)
            finals.append((name, final))
            results += [(name, p, o, t) for p, o, t in zip(PROBES, ours, theirs)]
            if xclient or name == "style-host":
                trusted.append((name, trusted_probe(inst.port), trusted_probe(pf.port)))
        inst.run("postqueue", "-f", check=False)
        wait_queue_empty(inst, timeout=20)
    finally:
        pf.close()
        sink.close()
    accepted = [r for r in results if r[2].startswith("250")]
    differ = [r for r in results if r[2] != r[3]]
    unexplained = [r for r in differ if (r[0], r[1]) not in KNOWN_DIFFERENCES
                   and ("*", r[1]) not in KNOWN_DIFFERENCES]
    relayed = [r for rcpts, _ in sink.messages for r in rcpts if r not in AUTHORIZED]
    print(f"\nrelay battery: {len(VARIANTS)} variants x {len(PROBES)} probes = {len(results)} RCPTs; "
          f"Postern accepted {len(accepted)} (Postfix {sum(r[3].startswith('250') for r in results)}); "
          f"relayed {len(relayed)} (plus {sum(len(m[0]) for m in sink.messages) - len(relayed)} to "
          f"relay_domains); identical answers {len(results) - len(differ)}/{len(results)}; "
          f"{time.monotonic() - t0:.1f}s")
    for name, p, o, t in differ:
        print(f"  differs [{name}] {p}: postern={o!r} postfix={t!r}")
    assert relayed == [], f"relayed: {relayed}"
    assert not [f for f in finals if f[1] is not None and not f[1].startswith("250")], finals
    for name, ours, theirs in trusted:
        assert ours == theirs, f"[{name}] trusted-client probe: postern={ours!r} postfix={theirs!r}"
    assert not unexplained, "\n".join(f"[{n}] {p}: postern={o!r} postfix={t!r}" for n, p, o, t in unexplained)


# ----------------------------------------------------------------- VRFY and fail-closed tables

# (name, settings, commands). Commands are sent after EHLO; "RCPT ..." ones after a MAIL.
FAIL_CLOSED = [
    ("vrfy", {}, [
        "VRFY user", f"VRFY <user@{HOST}>", "VRFY nosuch", f"VRFY <nosuch@{HOST}>",
        f"VRFY User@{HOST.upper()}.", "VRFY postmaster", "VRFY user@other.example",
        f"VRFY user%other.example@{HOST}",
    ]),
    ("vrfy-disabled", {"disable_vrfy_command": "yes"}, ["VRFY user", "VRFY nosuch"]),
    ("local-maps-broken", {"local_recipient_maps": "hash:/nonexistent/local"}, [
        f"RCPT TO:<user@{HOST}>", "RCPT TO:<user>", "VRFY user",
    ]),
    ("alias-maps-broken", {"virtual_alias_maps": "hash:/nonexistent/valias"}, [
        f"RCPT TO:<user@{HOST}>", "RCPT TO:<user@relay.example>",
    ]),
    ("relay-maps-broken", {"relay_recipient_maps": "hash:/nonexistent/relay"}, [
        "RCPT TO:<user@relay.example>", f"RCPT TO:<user@{HOST}>",
    ]),
    ("access-broken", {"smtpd_recipient_restrictions": "check_recipient_access hash:/nonexistent/acc"}, [
        f"RCPT TO:<user@{HOST}>", "RCPT TO:<user@other.example>",
    ]),
    ("unknown-word", {"smtpd_relay_restrictions": "permit_mynetworks, no_such_restriction, reject"}, [
        f"RCPT TO:<user@{HOST}>",
    ]),
]
# Known to Postfix, not implemented by Postern: Postern answers as for an unknown word.
UNIMPLEMENTED = ["reject_unverified_recipient", "check_sasl_access inline:{a=OK}", "permit_tls_clientcerts"]


def run_commands(port: int, commands: list[str]) -> list[str]:
    s = Session(port)
    try:
        s.cmd("EHLO client.example")
        out, mail = [], False
        for c in commands:
            if c.startswith("RCPT") and not mail:
                assert s.cmd(f"MAIL FROM:<probe@{HOST}>").startswith("250")
                mail = True
            out.append(s.cmd(c))
        return out
    finally:
        s.close()


def test_vrfy_and_fail_closed_tables_match_postfix(instance):
    pf = PostfixSmtpd(free_port(), "[127.0.0.1]:9")
    inst = instance
    differ: list[str] = []
    extra = ["disable_vrfy_command", "virtual_alias_maps", "relay_recipient_maps"]
    try:
        pf.setup()
        common = [f"{k}={v}" for k, v in COMMON.items()]
        pf.postconf("-e", *common)
        inst.run("postconf", "-e", *common)
        first = True
        for name, overrides, commands in FAIL_CLOSED:
            unset = {k: None for k in extra if k not in overrides}
            configure(pf, inst, name, {**unset, **overrides}, first)
            first = False
            theirs = run_commands(pf.port, commands)
            ours = run_commands(inst.port, commands)
            differ += [f"[{name}] {c}: postern={o!r} postfix={t!r}"
                       for c, o, t in zip(commands, ours, theirs) if o != t]
        for word in UNIMPLEMENTED:
            name = "unimplemented-" + word.split()[0]
            inst.run("postconf", "-e", f"smtpd_relay_restrictions=permit_mynetworks, {word}, reject",
                     f"smtpd_banner=$myhostname ESMTP battery-{name}")
            inst.reload()
            wait_banner(inst.port, f"battery-{name}", "Postern")
            got = run_commands(inst.port, [f"RCPT TO:<user@{HOST}>"])[0]
            assert got == "451 4.3.5 Server configuration error", (word, got)
            assert f'unknown smtpd restriction: "{word.split()[0]}"' in inst.log(), word
    finally:
        pf.close()
    assert not differ, "\n".join(differ)


@pytest.mark.parametrize("style", ["host", "subnet", "class"])
def test_postconf_shows_the_computed_mynetworks_as_postfix(postern_bin, tmp_path, style):
    """`postconf mynetworks` prints the networks smtpd trusts (mynetworks_style over the
    interface addresses), the same as Debian's postconf on this host."""
    if not Path("/usr/sbin/postconf").exists():
        pytest.skip("Debian's postconf is not installed")
    (tmp_path / "main.cf").write_text(
        f"mynetworks_style = {style}\ninet_interfaces = all\ninet_protocols = all\n")
    (tmp_path / "master.cf").write_text("")
    ours = subprocess.run([str(postern_bin), "-c", str(tmp_path), "postconf", "mynetworks"],
                          capture_output=True, text=True, timeout=30)
    theirs = subprocess.run(["/usr/sbin/postconf", "-c", str(tmp_path), "mynetworks"],
                            capture_output=True, text=True, timeout=30)
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
