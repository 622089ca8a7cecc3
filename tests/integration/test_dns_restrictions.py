"""DNS-based smtpd restrictions against a loopback DNS server (dnsserver.py).

Every instance here sets `dns_servers = 127.0.0.1:PORT`, so no lookup ever
reaches the machine's own resolver.
"""

from __future__ import annotations

import email
import email.policy

import pytest

from dnsserver import DnsServer, query
from test_smtpd import Raw, started

ZONE = {
    # A domain with an MX, one with only an address, one with a null MX.
    ("example.test", "MX"): [(10, "mx.example.test")],
    ("mx.example.test", "A"): ["192.0.2.1"],
    ("addr.example.test", "A"): ["192.0.2.2"],
    ("nomail.example.test", "MX"): [(0, ".")],
    ("broken.example.test", "MX"): DnsServer.SERVFAIL,
    ("broken.example.test", "A"): DnsServer.SERVFAIL,
    ("broken.example.test", "AAAA"): DnsServer.SERVFAIL,
    # DNSBL: the client 127.0.0.1 is listed in zen.test with the usual test answer.
    ("1.0.0.127.zen.test", "A"): ["127.0.0.2"],
    ("1.0.0.127.zen.test", "TXT"): ["Listed, see https://zen.test/query/127.0.0.1"],
    # DNSWL / RHSBL.
    ("1.0.0.127.wl.test", "A"): ["127.0.15.0"],
    ("spam.example.test.dbl.test", "A"): ["127.0.1.2"],
}


def dns_instance(instance, port: int, *settings: str):
    return started(instance, f"dns_servers = 127.0.0.1:{port}", *settings)


def session(inst, sender: str, rcpt: str = "u@localhost", helo: str = "client.example"):
    c = Raw(inst.port)
    assert c.cmd(f"EHLO {helo}")[0] == 250
    mail = c.cmd(f"MAIL FROM:<{sender}>")
    rcpt_reply = c.cmd(f"RCPT TO:<{rcpt}>") if mail[0] == 250 else None
    return c, mail, rcpt_reply


def test_dnsserver_itself():
    with DnsServer(ZONE) as port:
        assert query(port, "example.test", "MX")[0] == 0
        assert query(port, "nx.example.test", "A") == (3, [])
        assert query(port, "example.test", "A") == (0, [])  # NODATA
        assert query(port, "broken.example.test", "A")[0] == 2


def test_reject_unknown_sender_domain(instance):
    srv = DnsServer(ZONE)
    with srv as port:
        inst = dns_instance(instance, port, "smtpd_sender_restrictions = reject_unknown_sender_domain")
        for good in ("a@example.test", "a@addr.example.test", "a@EXAMPLE.test"):
            c, mail, rcpt = session(inst, good)
            assert mail[0] == 250 and rcpt[0] == 250, (good, mail, rcpt)
            c.cmd("QUIT")
            c.close()

        c, mail, rcpt = session(inst, "a@nx.example")
        # smtpd_delay_reject = yes: the sender is refused at RCPT, as Postfix does.
        assert mail == (250, "250 2.1.0 Ok")
        assert rcpt == (450, "450 4.1.8 <a@nx.example>: Sender address rejected: Domain not found"), rcpt
        c.cmd("QUIT")
        c.close()

        # A DNS failure defers (defer_if_permit): never a permanent refusal.
        c, mail, rcpt = session(inst, "a@broken.example.test")
        assert rcpt[0] == 450, rcpt
        c.cmd("QUIT")
        c.close()

        # The null sender has no domain to check.
        c, mail, rcpt = session(inst, "")
        assert rcpt[0] == 250, rcpt
        c.cmd("QUIT")
        c.close()

        log = inst.log()
        assert "Sender address rejected: Domain not found; from=<a@nx.example>" in log, log
        # The answers really came from our server.
        assert ("nx.example", "MX") in srv.queries, srv.queries


def test_unknown_address_reject_code(instance):
    with DnsServer(ZONE) as port:
        inst = dns_instance(instance, port, "smtpd_sender_restrictions = reject_unknown_sender_domain",
                            "unknown_address_reject_code = 550")
        c, _, rcpt = session(inst, "a@nx.example")
        assert rcpt == (550, "550 5.1.8 <a@nx.example>: Sender address rejected: Domain not found"), rcpt
        c.cmd("QUIT")
        c.close()


def test_reject_rbl_client(instance):
    with DnsServer(ZONE) as port:
        inst = dns_instance(instance, port, "smtpd_client_restrictions = reject_rbl_client zen.test")
        c, mail, rcpt = session(inst, "a@example.test")
        assert mail[0] == 250
        assert rcpt == (554, "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.test; "
                             "Listed, see https://zen.test/query/127.0.0.1"), rcpt
        c.cmd("QUIT")
        c.close()
        log = inst.log()
        assert "blocked using zen.test" in log, log


def test_rbl_filter_and_unlisted_zone(instance):
    with DnsServer(ZONE) as port:
        # The answer 127.0.0.2 does not match the filter; the other zone does not list us.
        inst = dns_instance(instance, port,
                            "smtpd_client_restrictions = reject_rbl_client zen.test=127.0.0.[3..11],"
                            " reject_rbl_client other.test")
        c, mail, rcpt = session(inst, "a@example.test")
        assert rcpt[0] == 250, rcpt
        c.cmd("QUIT")
        c.close()


def test_permit_dnswl_client_before_rbl(instance):
    with DnsServer(ZONE) as port:
        inst = dns_instance(instance, port,
                            "smtpd_client_restrictions = permit_dnswl_client wl.test, reject_rbl_client zen.test")
        c, mail, rcpt = session(inst, "a@example.test")
        assert rcpt[0] == 250, rcpt
        c.cmd("QUIT")
        c.close()


def test_reject_rhsbl_sender(instance):
    with DnsServer(ZONE) as port:
        inst = dns_instance(instance, port, "smtpd_sender_restrictions = reject_rhsbl_sender dbl.test")
        c, _, rcpt = session(inst, "a@spam.example.test")
        assert rcpt[0] == 554, rcpt
        assert "Sender address [spam.example.test] blocked using dbl.test" in rcpt[1], rcpt
        c.cmd("QUIT")
        c.close()
        c, _, rcpt = session(inst, "a@example.test")
        assert rcpt[0] == 250, rcpt
        c.cmd("QUIT")
        c.close()


def test_reject_unknown_helo_hostname(instance):
    with DnsServer(ZONE) as port:
        inst = dns_instance(instance, port, "smtpd_helo_required = yes",
                            "smtpd_helo_restrictions = reject_unknown_helo_hostname")
        c, _, rcpt = session(inst, "a@example.test", helo="nx-helo.example")
        assert rcpt[0] == 450, rcpt
        assert "<nx-helo.example>: Helo command rejected: Host not found" in rcpt[1], rcpt
        c.cmd("QUIT")
        c.close()
        c, _, rcpt = session(inst, "a@example.test", helo="mx.example.test")
        assert rcpt[0] == 250, rcpt
        c.cmd("QUIT")
        c.close()


def test_client_name_from_hosts_in_received(instance):
    """127.0.0.1 is named from /etc/hosts (no DNS) and verified: `name [addr]`."""
    with DnsServer(ZONE) as port:
        inst = dns_instance(instance, port)
        c, mail, rcpt = session(inst, "a@example.test", rcpt="rc@localhost")
        assert rcpt[0] == 250
        assert c.cmd("DATA")[0] == 354
        assert c.cmd(b"Subject: dns\r\n\r\nhi\r\n.")[0] == 250
        c.cmd("QUIT")
        c.close()
        inst.wait_for_mail("rc", 1)
        msg = email.message_from_bytes(inst.new_messages("rc")[0].read_bytes(), policy=email.policy.compat32)
        received = msg.get_all("Received")[0]
        assert "(localhost [127.0.0.1])" in received, received


def test_null_mx_domains_refused(instance):
    """RFC 7505: a domain publishing a null MX accepts no mail (Postfix's replies)."""
    with DnsServer(ZONE) as port:
        inst = dns_instance(instance, port,
                            "smtpd_sender_restrictions = reject_unknown_sender_domain",
                            "smtpd_recipient_restrictions = reject_unknown_recipient_domain",
                            "mynetworks = 192.0.2.0/24", "relay_domains = nomail.example.test")
        c, mail, rcpt = session(inst, "a@nomail.example.test")
        assert rcpt == (550, "550 5.7.27 <a@nomail.example.test>: Sender address rejected: "
                             "Domain nomail.example.test does not accept mail (nullMX)"), rcpt
        c.cmd("QUIT")
        c.close()
        c, mail, rcpt = session(inst, "a@example.test", rcpt="b@nomail.example.test")
        assert rcpt == (556, "556 5.1.10 <b@nomail.example.test>: Recipient address rejected: "
                             "Domain nomail.example.test does not accept mail (nullMX)"), rcpt
        c.cmd("QUIT")
        c.close()
