"""test_filter_readme.py -- the after-queue content filter as amavisd-new's README.postfix
and Postfix's FILTER_README set it up, master.cf lines copied unchanged:

    smtp-amavis unix -  -  n  -  2  smtp
        -o smtp_data_done_timeout=1200
        -o smtp_send_xforward_command=yes
        -o disable_dns_lookups=yes
        -o max_use=20

plus FILTER_README's reinjection smtpd (`localhost:PORT inet n - n - - smtpd -o
content_filter= … -o smtpd_authorized_xforward_hosts=127.0.0.0/8`) and FILTER_README's
`content_filter = smtp-amavis:localhost:PORT` (a name without brackets).

The filter is a scripted SMTP server here: it offers XFORWARD in its EHLO reply, records
the XFORWARD commands it gets, and reinjects each message through the reinjection smtpd,
passing the same XFORWARD attributes on (as amavisd-new does). Checked:

* the smtp client sends the ORIGINAL client's attributes (address, HELO, protocol, the
  queue ID as IDENT, SOURCE=REMOTE) in Postfix's two XFORWARD commands;
* disable_dns_lookups: `localhost` is found through the system's name service, no MX or
  address query reaches the DNS server main.cf names (a loopback DNS server whose MX for
  `localhost` would lead elsewhere);
* the delivered message's Received header added at reinjection names the original
  client's HELO, not the filter's; nothing loops, the queue ends empty.

Also the same client code without the legacy switch: `smtp_dns_support_level = disabled`
with DANE levels (dane falls back to may, dane-only defers), and `smtp_host_lookup =
native`.

Every process started here is stopped by PID; every wait is bounded.
"""

from __future__ import annotations

import re
import smtplib
import socket
import time

from dnsserver import DnsServer
from postern import MAX_WAIT, free_port
from test_content_filter import REINJECT_OPTIONS, add_services, send
from test_rewrite import mail
from test_smtp_client import Peer, postconf, wait_port, wait_queue_empty


class XforwardFilter(Peer):
    """A content filter on 127.0.0.1 (test_smtp_client's Peer with another conversation):
    offers XFORWARD, records what it gets, reinjects every message to `back` with the same
    XFORWARD attributes and an `X-Filtered` header."""

    def __init__(self, back: int):
        self.back = back
        self.xforward: list[str] = []
        self.count = 0
        self.errors: list[str] = []
        super().__init__()

    def _session(self, c: socket.socket) -> None:
        try:
            self._conversation(c)
        except (AssertionError, smtplib.SMTPException) as e:
            self.errors.append(repr(e))

    def _conversation(self, c: socket.socket) -> None:
        f = c.makefile("rwb")

        def say(s: str) -> None:
            f.write(s.encode() + b"\r\n")
            f.flush()
        say("220 filter.test ESMTP")
        xf: list[str] = []
        sender, rcpts = "", []
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line.decode().rstrip("\r\n")
            u = cmd.upper()
            if u.startswith("EHLO"):
                say("250-filter.test\r\n250-PIPELINING\r\n250-SIZE 10000000\r\n"
                    "250 XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE")
            elif u.startswith("XFORWARD "):
                self.xforward.append(cmd)
                xf.append(cmd[len("XFORWARD "):])
                say("250 2.0.0 Ok")
            elif u.startswith("MAIL FROM:"):
                sender, rcpts = cmd[cmd.index("<") + 1:cmd.index(">")], []
                say("250 2.1.0 Ok")
            elif u.startswith("RCPT TO:"):
                rcpts.append(cmd[cmd.index("<") + 1:cmd.index(">")])
                say("250 2.1.5 Ok")
            elif u == "DATA":
                say("354 End data with <CR><LF>.<CR><LF>")
                body = b""
                while True:
                    line = f.readline()
                    if not line or line == b".\r\n":
                        break
                    body += line[1:] if line.startswith(b"..") else line
                self._reinject(xf, sender, rcpts, body)
                self.count += 1
                xf = []
                say("250 2.0.0 Ok: queued")
            elif u == "QUIT":
                say("221 2.0.0 Bye")
                return
            else:
                say("250 2.0.0 Ok")

    def _reinject(self, xf: list[str], sender: str, rcpts: list[str], body: bytes) -> None:
        with smtplib.SMTP("127.0.0.1", self.back, local_hostname="filter.example",
                          timeout=MAX_WAIT) as s:
            s.ehlo()
            for attrs in xf:
                code, text = s.docmd("XFORWARD", attrs)
                assert code == 250, (attrs, code, text)
            s.sendmail(sender, rcpts, b"X-Filtered: yes\r\n" + body)


def test_filter_readme_smtp_amavis(instance):
    back = free_port()
    filt = XforwardFilter(back)
    # If the smtp client looked up DNS, `localhost` would have an MX elsewhere.
    zone = {("localhost", "MX"): [(10, "elsewhere.test")], ("elsewhere.test", "A"): ["127.0.0.9"]}
    dns = DnsServer(zone)
    try:
        with dns as dns_port:
            postconf(instance, f"dns_servers = 127.0.0.1:{dns_port}",
                     f"content_filter = smtp-amavis:localhost:{filt.port}")
            add_services(instance,
                         "smtp-amavis unix -  -  n  -  2  smtp",
                         "    -o smtp_data_done_timeout=1200",
                         "    -o smtp_send_xforward_command=yes",
                         "    -o disable_dns_lookups=yes",
                         "    -o max_use=20",
                         f"localhost:{back} inet n - n - - smtpd {REINJECT_OPTIONS}")
            instance.start()
            wait_port(instance.port)
            wait_port(back)
            send(instance.port, "u@localhost", b"Subject: scan me\r\n\r\nbody\r\n")
            m = mail(instance, "u")[0]
            wait_queue_empty(instance)
            time.sleep(0.5)
            assert not filt.errors, filt.errors
            assert filt.count == 1, "the reinjected message went to the filter again"

            # Postfix's two commands: NAME/ADDR/PORT, then PROTO/HELO/IDENT/SOURCE.
            assert len(filt.xforward) == 2, filt.xforward
            first = dict(kv.split("=", 1) for kv in filt.xforward[0].split()[1:])
            second = dict(kv.split("=", 1) for kv in filt.xforward[1].split()[1:])
            assert first["ADDR"] == "127.0.0.1" and set(first) <= {"NAME", "ADDR", "PORT"}, first
            assert second["HELO"] == "client.example", second
            assert second["PROTO"] == "ESMTP" and second["SOURCE"] == "REMOTE", second
            log = instance.log()
            qid = second["IDENT"]
            assert re.search(rf"{qid}: client=", log), (qid, log)

            # Reinjected with the original client: the new Received header names its HELO.
            assert m["X-Filtered"] == "yes" and m["Subject"] == "scan me"
            top = " ".join(m.get_all("Received")[0].split())
            assert top.startswith("from client.example ("), top
            assert "filter.example" not in top, top

            # disable_dns_lookups: found in /etc/hosts, no MX query, no DNS for the filter.
            assert f"relay=localhost[127.0.0.1]:{filt.port}" in log, log
            asked = [q for q in dns.queries if q[1] in ("MX", "A", "AAAA") or q[0] == "localhost"]
            assert not asked, asked
            for name in ("disable_dns_lookups", "smtp_send_xforward_command", "max_use",
                         "smtp_data_done_timeout"):
                assert f"parameter {name}" not in log, log
    finally:
        filt.close()


def test_dns_support_level_disabled_and_dane(instance):
    """smtp_dns_support_level = disabled, the non-legacy form: a next hop without brackets
    gets no MX lookup; DANE cannot work without DNS, so `dane` falls back to `may` and
    `dane-only` defers ("client TLS configuration problem"), each with Postfix's warning."""
    peer = Peer()
    dns = DnsServer({("localhost", "MX"): [(10, "elsewhere.test")]})
    try:
        with dns as dns_port:
            postconf(instance, f"dns_servers = 127.0.0.1:{dns_port}",
                     "smtp_dns_support_level = disabled",
                     "smtp_tls_security_level = dane",
                     f"relayhost = localhost:{peer.port}",
                     f"transport_maps = inline:{{ strict.example=strict:localhost:{peer.port} }}")
            add_services(instance, "strict unix - - n - - smtp -o smtp_tls_security_level=dane-only")
            instance.start()
            wait_port(instance.port)
            instance.sendmail(["-f", "s@localhost", "u@remote.example", "v@strict.example"],
                              b"Subject: no dns\n\nx\n")
            instance.wait_for(lambda: peer.messages, what="message at the relay host")
            instance.wait_for(lambda: "to=<v@strict.example>" in instance.log(),
                              what="dane-only result")
            log = instance.log()
            assert peer.messages[0][0] == ["u@remote.example"], peer.messages
            assert f"relay=localhost[127.0.0.1]:{peer.port}" in log, log
            assert f"localhost:{peer.port}: dane configured with dnssec lookups disabled" in log, log
            assert f"localhost:{peer.port}: dane-only configured with dnssec lookups disabled" in log
            line = next(l for l in log.splitlines() if "to=<v@strict.example>" in l)
            assert "status=deferred (client TLS configuration problem)" in line, line
            assert "dsn=4.7.5" in line, line
            assert not [q for q in dns.queries if q[1] in ("MX", "A", "AAAA", "TLSA")], dns.queries
    finally:
        peer.close()


def test_smtp_host_lookup_native(instance):
    """smtp_host_lookup = native: MX records still come from the DNS, the MX host's
    addresses from the system's name service (`localhost` from /etc/hosts)."""
    peer = Peer()
    dns = DnsServer({("remote.example", "MX"): [(10, "localhost")]})
    try:
        with dns as dns_port:
            postconf(instance, f"dns_servers = 127.0.0.1:{dns_port}",
                     "smtp_host_lookup = native", f"relayhost = remote.example:{peer.port}")
            instance.start()
            wait_port(instance.port)
            instance.sendmail(["-f", "s@localhost", "u@remote.example"], b"Subject: native\n\nx\n")
            instance.wait_for(lambda: peer.messages, what="message at the MX host")
            instance.wait_for(lambda: "status=sent" in instance.log(), what="status=sent")
            assert f"relay=localhost[127.0.0.1]:{peer.port}" in instance.log()
            assert ("remote.example", "MX") in dns.queries, dns.queries
            assert not [q for q in dns.queries if q[1] in ("A", "AAAA")], dns.queries
    finally:
        peer.close()
