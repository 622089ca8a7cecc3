"""Fail closed, everywhere (issue 10 §3): every table consumer, given a table that
cannot be opened or queried, makes the request that needs it a temporary failure --
the message stays queued with `status=deferred`, or the SMTP command gets a 4xx
(451 4.3.0 / 4.3.5) -- and never goes on without the table (no delivery, no accept,
no bounce). Once the table is repaired (`postern postmap`, the file restored, the
table approved for proxymap) and the instance reloaded, the same mail is delivered.

One root instance (master as root, daemons with their Postfix privileges: local and
virtual as root, cleanup, smtpd, qmgr, smtp and proxymap as mail_owner) serves the
whole module; each case reconfigures it with `postconf -e` + `reload` and restores
the base configuration afterwards. Mail to remote domains goes to a scripted SMTP
peer on loopback (relayhost).

Broken-table shapes: an indexed `hash:` whose .db was never built, a path under a
directory that does not exist, a `regexp:`/`pcre:`/`texthash:` source that is
missing or unreadable by the daemon's account, and `proxy:` tables that proxymap
refuses (not in proxy_read_maps) or cannot open. A regular expression with a syntax
error is not among them: Postfix 3.7 skips that rule with a warning and keeps the
rest of the table, and so does Postern."""

from __future__ import annotations

import os
import re
import smtplib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from postern import TEST_USER, Instance, ensure_user
from test_smtp_client import Peer, wait_port

USER = TEST_USER
WAIT = 10.0  # a deferral or a delivery takes well under a second here
BODY = b"From: snd@localhost\r\nSubject: fail closed %s\r\n\r\nbody\r\n"


class Battery:
    """The shared instance, its tables directory and the relay peer."""

    def __init__(self, inst: Instance, peer: Peer):
        self.inst = inst
        self.peer = peer
        self.dir = inst.root / "fc"
        self.dir.mkdir(mode=0o755)
        self.vbase = inst.root / "vmail"
        self.base: dict[str, str] = {}

    # ---- tables -------------------------------------------------------------

    def source(self, name: str, text: str, mode: int = 0o644) -> Path:
        p = self.dir / name
        p.write_text(text)
        p.chmod(mode)
        return p

    def postmap(self, spec: str) -> None:
        self.inst.run("postmap", spec)

    # ---- configuration --------------------------------------------------------

    def reload(self) -> None:
        """`postern reload`, then waits for master's reload line (the old qmgr and
        pickup are gone and the new services are listening by then)."""
        before = self.inst.log().count("reload -- version")
        self.inst.reload()
        self.inst.wait_for(lambda: self.inst.log().count("reload -- version") > before, what="reload done")

    def configure(self, settings: tuple[str, ...] = ()) -> None:
        if settings:
            self.inst.run("postconf", "-e", *settings)
        self.reload()

    def remember_base(self) -> None:
        out = self.inst.run("postconf", "-n").stdout.decode()
        pairs = (l.split("=", 1) for l in out.splitlines() if "=" in l)
        self.base = {k.strip(): v.strip() for k, v in pairs}

    def restore(self, params: tuple[str, ...]) -> None:
        """Puts `params` back as they were in the base configuration (no reload)."""
        if drop := [p for p in params if p not in self.base]:
            self.inst.run("postconf", "-X", *drop)
        if keep := [f"{p} = {self.base[p]}" for p in params if p in self.base]:
            self.inst.run("postconf", "-e", *keep)

    # ---- mail -------------------------------------------------------------------

    def sendmail(self, rcpt: str, tag: str) -> None:
        self.inst.sendmail(["-f", "snd@localhost", rcpt], BODY.replace(b"\r\n", b"\n") % tag.encode())

    def smtp(self, sender: str, rcpt: str, tag: str) -> tuple[str, int, bytes]:
        """One SMTP transaction; (stage, code, text) of the first reply that is
        not a success, or of the end of DATA."""
        with smtplib.SMTP("127.0.0.1", self.inst.port, local_hostname="client.example",
                          timeout=WAIT) as c:
            c.ehlo("client.example")
            code, text = c.mail(sender)
            if code >= 300:
                return "MAIL", code, text
            code, text = c.rcpt(rcpt)
            if code >= 300:
                return "RCPT", code, text
            try:
                code, text = c.data(BODY % tag.encode())
            except smtplib.SMTPDataError as e:
                return "DATA", e.smtp_code, e.smtp_error
            return "DATA", code, text

    def lines(self, rcpt: str) -> list[str]:
        return [l for l in self.inst.log().splitlines() if f"<{rcpt}>" in l and " status=" in l]

    def wait_status(self, rcpt: str, status: str) -> str:
        return self.inst.wait_for(lambda: next((l for l in self.lines(rcpt) if f"status={status}" in l), None),
                                  timeout=WAIT, what=f"status={status} for <{rcpt}>")

    def flush(self) -> None:
        self.inst.run("postqueue", "-f")


@dataclass
class Case:
    """One consumer: `broken` settings make it use a broken table; `repair` fixes
    the table (and returns settings to apply with it); `unset` restores the base."""
    name: str
    broken: Callable[[Battery], tuple[str, ...]]
    repair: Callable[[Battery], tuple[str, ...]]
    unset: tuple[str, ...]
    rcpt: str = ""          # default: USER+<the case's name>@localhost
    via: str = "sendmail"   # sendmail: a deferral; smtp: a 4xx; pickup: kept in maildrop/
    sender: str = "snd@localhost"
    known: str = ""         # a known fail-closed gap: the case is expected to fail, for this reason

    def __post_init__(self) -> None:
        if not self.rcpt:
            self.rcpt = f"{USER}+{re.sub('[^a-z0-9]+', '-', self.name.lower()).strip('-')}@localhost"


def missing_db(b: Battery, name: str, text: str) -> str:
    """`hash:` table whose source exists but was never postmapped."""
    b.source(name, text)
    return f"hash:{b.dir / name}"


def postmapped(b: Battery, name: str) -> tuple[str, ...]:
    b.postmap(f"hash:{b.dir / name}")
    return ()


def unreadable(b: Battery, name: str, text: str, kind: str) -> str:
    """A source file only root can read (for daemons that run as mail_owner)."""
    b.source(name, text, mode=0o600)
    return f"{kind}:{b.dir / name}"


def readable(b: Battery, name: str) -> tuple[str, ...]:
    (b.dir / name).chmod(0o644)
    return ()


def missing_file(b: Battery, name: str, kind: str) -> str:
    (b.dir / name).unlink(missing_ok=True)
    return f"{kind}:{b.dir / name}"


def restored(name: str, text: str) -> Callable[[Battery], tuple[str, ...]]:
    def fix(b: Battery) -> tuple[str, ...]:
        b.source(name, text)
        return ()
    return fix


def replaced(param: str, name: str, text: str) -> Callable[[Battery], tuple[str, ...]]:
    """For a table under a directory that does not exist: point the parameter at a
    working table instead."""
    def fix(b: Battery) -> tuple[str, ...]:
        return (f"{param} = texthash:{b.source(name, text)}",)
    return fix


NOWHERE = "/nonexistent/postern-fc"

CASES: list[Case] = [
    # ---- qmgr / trivial-rewrite
    Case("transport_maps",
         lambda b: (f"transport_maps = {missing_db(b, 'transport', 'localhost local:')}",),
         lambda b: postmapped(b, "transport"), ("transport_maps",)),
    Case("relocated_maps",
         lambda b: (f"relocated_maps = {missing_file(b, 'relocated', 'regexp')}",),
         restored("relocated", "/^nobody@/ somewhere@else.example\n"), ("relocated_maps",)),
    Case("proxy: not in proxy_read_maps (transport_maps)",
         lambda b: (f"transport_maps = proxy:texthash:{b.source('ptransport', 'nomatch.example error:x')}",
                    "proxy_read_maps = proxy:texthash:/dev/null"),
         lambda b: ("proxy_read_maps = $transport_maps",), ("transport_maps", "proxy_read_maps")),
    Case("mydestination",
         lambda b: (f"mydestination = $myhostname, {missing_db(b, 'mydestination', 'localhost x')}",),
         lambda b: postmapped(b, "mydestination"), ("mydestination",)),
    Case("relay_domains",
         lambda b: (f"relay_domains = {missing_db(b, 'relay_domains', 'relay-fc.example x')}",),
         lambda b: postmapped(b, "relay_domains"), ("relay_domains",), rcpt="fc-rd@remote.example"),
    Case("virtual_alias_domains",
         lambda b: (f"virtual_alias_domains = {missing_file(b, 'valias_domains', 'texthash')}",),
         restored("valias_domains", "valias-fc.example x\n"), ("virtual_alias_domains",),
         rcpt="fc-vad@remote.example"),
    Case("virtual_mailbox_domains",
         lambda b: (f"virtual_mailbox_domains = {missing_db(b, 'vmailbox_domains', 'vexample.test x')}",),
         lambda b: postmapped(b, "vmailbox_domains"), ("virtual_mailbox_domains",), rcpt="fc-vmd@vexample.test"),
    Case("unionmap: with a broken member (transport_maps)",
         lambda b: (f"transport_maps = unionmap:{{inline:{{nomatch.example=error:x}}, "
                    f"{missing_db(b, 'utransport', 'localhost local:')}}}",),
         lambda b: postmapped(b, "utransport"), ("transport_maps",)),
    Case("alias_maps",
         lambda b: (f"alias_maps = {missing_db(b, 'aliases', f'fcalias {USER}')}",),
         lambda b: postmapped(b, "aliases"), ("alias_maps",), rcpt="fcalias@localhost"),
    Case("proxy: table proxymap cannot open (alias_maps)",
         lambda b: (f"alias_maps = proxy:{missing_db(b, 'paliases', f'fcpalias {USER}')}",),
         lambda b: postmapped(b, "paliases"), ("alias_maps",), rcpt="fcpalias@localhost"),
    Case("mailbox_command_maps",
         lambda b: (f"mailbox_command_maps = hash:{NOWHERE}/mailbox_command",),
         replaced("mailbox_command_maps", "mailbox_command", "nobody /bin/false\n"),
         ("mailbox_command_maps",)),
    Case("mailbox_transport_maps",
         lambda b: (f"mailbox_transport_maps = {missing_file(b, 'mailbox_transport', 'pcre')}",),
         restored("mailbox_transport", "/^nobody$/ error:x\n"), ("mailbox_transport_maps",)),
    Case("fallback_transport_maps",
         lambda b: (f"fallback_transport_maps = {missing_db(b, 'fallback', f'fcunknown smtp:[127.0.0.1]:{b.peer.port}')}",),
         lambda b: postmapped(b, "fallback"), ("fallback_transport_maps",), rcpt="fcunknown@localhost"),
    # ---- virtual
    Case("virtual_mailbox_maps",
         lambda b: (f"virtual_mailbox_maps = {missing_file(b, 'vmailbox', 'texthash')}",),
         restored("vmailbox", "@vexample.test vexample.test/fc/\n"), ("virtual_mailbox_maps",),
         rcpt="fc-mailbox@vexample.test"),
    Case("virtual_uid_maps",
         lambda b: (f"virtual_uid_maps = {missing_db(b, 'vuid', f'@vexample.test {ensure_user().pw_uid}')}",),
         lambda b: postmapped(b, "vuid"), ("virtual_uid_maps",), rcpt="fc-uid@vexample.test"),
    Case("virtual_gid_maps",
         lambda b: (f"virtual_gid_maps = {missing_db(b, 'vgid', f'@vexample.test {ensure_user().pw_gid}')}",),
         lambda b: postmapped(b, "vgid"), ("virtual_gid_maps",), rcpt="fc-gid@vexample.test"),
    # ---- smtp client: smtp_tls_policy_maps and smtp_sasl_password_maps are tested in
    # test_config_inventory.py (test_smtp_client_broken_table_defers).
    # ---- cleanup (SMTP: the end of DATA gets 451)
    Case("canonical_maps",
         lambda b: (f"canonical_maps = {missing_db(b, 'canonical', 'nobody@localhost root@localhost')}",),
         lambda b: postmapped(b, "canonical"), ("canonical_maps",), via="smtp"),
    Case("sender_canonical_maps",
         lambda b: (f"sender_canonical_maps = {unreadable(b, 'scanonical', '/^nobody@/ x@y', 'regexp')}",),
         lambda b: readable(b, "scanonical"), ("sender_canonical_maps",), via="smtp"),
    Case("recipient_canonical_maps",
         lambda b: (f"recipient_canonical_maps = {missing_file(b, 'rcanonical', 'pcre')}",),
         restored("rcanonical", "/^nobody@/ x@y\n"), ("recipient_canonical_maps",), via="smtp"),
    Case("virtual_alias_maps",
         lambda b: (f"virtual_alias_maps = hash:{NOWHERE}/virtual",),
         replaced("virtual_alias_maps", "virtual", "nobody@localhost root@localhost\n"),
         ("virtual_alias_maps",), via="smtp"),
    Case("header_checks",
         lambda b: (f"header_checks = {unreadable(b, 'header_checks', '/^Subject: spam/ REJECT', 'regexp')}",),
         lambda b: readable(b, "header_checks"), ("header_checks",), via="smtp"),
    Case("body_checks",
         lambda b: (f"body_checks = {missing_file(b, 'body_checks', 'pcre')}",),
         restored("body_checks", "/^viagra/ REJECT\n"), ("body_checks",), via="smtp"),
    Case("sender_bcc_maps",
         lambda b: (f"sender_bcc_maps = {missing_db(b, 'sender_bcc', 'nobody@localhost root@localhost')}",),
         lambda b: postmapped(b, "sender_bcc"), ("sender_bcc_maps",), via="smtp"),
    Case("masquerade_exceptions",
         lambda b: ("masquerade_domains = example.com",
                    f"masquerade_exceptions = hash:{NOWHERE}/masquerade_exceptions"),
         lambda b: ("masquerade_exceptions = root",), ("masquerade_domains", "masquerade_exceptions"),
         via="smtp", sender="snd@host.example.com"),
    Case("recipient_bcc_maps",
         lambda b: (f"recipient_bcc_maps = {unreadable(b, 'recipient_bcc', '/^nobody@/ root@localhost', 'pcre')}",),
         lambda b: readable(b, "recipient_bcc"), ("recipient_bcc_maps",), via="smtp"),
    Case("mime_header_checks",
         lambda b: (f"mime_header_checks = {missing_file(b, 'mime_header_checks', 'regexp')}",),
         restored("mime_header_checks", "/^Content-Type: application[/]x-evil/ REJECT\n"),
         ("mime_header_checks",), via="smtp"),
    Case("nested_header_checks",
         lambda b: (f"nested_header_checks = hash:{NOWHERE}/nested_header_checks",),
         replaced("nested_header_checks", "nested_header_checks", "nomatch DUNNO\n"),
         ("nested_header_checks",), via="smtp"),
    # ---- cleanup, local submissions (pickup keeps the file)
    Case("mydestination in cleanup (virtual_alias_maps bare local part)",
         lambda b: (f"mydestination = $myhostname, {missing_db(b, 'cmydestination', 'localhost x')}",
                    f"virtual_alias_maps = inline:{{fcbare={USER}+fcbare@localhost}}"),
         lambda b: postmapped(b, "cmydestination"), ("mydestination", "virtual_alias_maps"), via="pickup",
         rcpt="fcbare@mx.fc.test"),
    Case("header_checks, local submission (pickup)",
         lambda b: (f"header_checks = {missing_file(b, 'pheader_checks', 'pcre')}",),
         restored("pheader_checks", "/^Subject: spam/ REJECT\n"), ("header_checks",), via="pickup"),
    # ---- smtpd (MAIL/RCPT get 451)
    Case("check_sender_access",
         lambda b: (f"smtpd_sender_restrictions = check_sender_access "
                    f"{missing_db(b, 'sender_access', 'spammer@example.org REJECT')}",),
         lambda b: postmapped(b, "sender_access"), ("smtpd_sender_restrictions",), via="smtp"),
    Case("check_client_access",
         lambda b: (f"smtpd_client_restrictions = check_client_access "
                    f"{unreadable(b, 'client_access', '/^192[.]0[.]2[.]/ REJECT', 'pcre')}",),
         lambda b: readable(b, "client_access"), ("smtpd_client_restrictions",), via="smtp"),
    Case("local_recipient_maps",
         lambda b: (f"local_recipient_maps = {missing_db(b, 'local_rcpt', f'{USER} x')}",),
         lambda b: postmapped(b, "local_rcpt"), ("local_recipient_maps",), via="smtp"),
    Case("relay_recipient_maps",
         lambda b: ("relay_domains = remote.example",
                    f"relay_recipient_maps = {missing_file(b, 'relay_rcpt', 'texthash')}"),
         restored("relay_rcpt", "fc-relay@remote.example x\n"), ("relay_domains", "relay_recipient_maps"),
         via="smtp", rcpt="fc-relay@remote.example"),
    Case("mydestination (smtpd)",
         lambda b: (f"mydestination = $myhostname, {missing_file(b, 'smydestination', 'texthash')}",),
         restored("smydestination", "localhost x\n"), ("mydestination",), via="smtp"),
    Case("relay_domains (smtpd)",
         lambda b: (f"relay_domains = {missing_file(b, 'srelay_domains', 'texthash')}",),
         restored("srelay_domains", "relay-fc.example x\n"), ("relay_domains",), via="smtp",
         rcpt="fc-srd@remote.example"),
    Case("virtual_alias_domains (smtpd)",
         lambda b: (f"virtual_alias_domains = {missing_file(b, 'svalias_domains', 'texthash')}",),
         restored("svalias_domains", "valias-fc.example x\n"), ("virtual_alias_domains",), via="smtp",
         rcpt="fc-svad@remote.example"),
    Case("virtual_mailbox_domains (smtpd)",
         lambda b: (f"virtual_mailbox_domains = {missing_db(b, 'svmailbox_domains', 'vexample.test x')}",),
         lambda b: postmapped(b, "svmailbox_domains"), ("virtual_mailbox_domains",), via="smtp",
         rcpt="fc-svmd@vexample.test"),
    Case("mynetworks",
         lambda b: (f"mynetworks = {missing_file(b, 'mynetworks', 'cidr')}",),
         restored("mynetworks", "127.0.0.0/8 x\n"), ("mynetworks",), via="smtp", rcpt="fc-mynet@remote.example"),
    Case("check_recipient_access",
         lambda b: (f"smtpd_recipient_restrictions = check_recipient_access {missing_file(b, 'rcpt_access', 'pcre')}",),
         restored("rcpt_access", "/^nobody@/ REJECT\n"), ("smtpd_recipient_restrictions",), via="smtp"),
    Case("smtpd_restriction_classes",
         lambda b: ("smtpd_restriction_classes = fcclass",
                    f"fcclass = check_sender_access {missing_db(b, 'class_access', 'spammer@example.org REJECT')}",
                    "smtpd_sender_restrictions = fcclass"),
         lambda b: postmapped(b, "class_access"), ("smtpd_restriction_classes", "fcclass", "smtpd_sender_restrictions"),
         via="smtp"),
    Case("check_helo_access",
         lambda b: (f"smtpd_helo_restrictions = check_helo_access {missing_db(b, 'helo_access', 'evil.example REJECT')}",),
         lambda b: postmapped(b, "helo_access"), ("smtpd_helo_restrictions",), via="smtp"),
    Case("smtpd_sender_login_maps",
         lambda b: ("smtpd_sender_restrictions = reject_sender_login_mismatch",
                    f"smtpd_sender_login_maps = {missing_db(b, 'login', 'nobody@localhost nobody')}"),
         lambda b: postmapped(b, "login"), ("smtpd_sender_restrictions", "smtpd_sender_login_maps"), via="smtp"),
]


BASE = (
    "myorigin = localhost", "mydomain = localhost", "myhostname = mx.fc.test",
    "recipient_delimiter = +", "virtual_mailbox_domains = vexample.test",
    "virtual_minimum_uid = 1",
    # No postmaster transcripts (notify_classes has resource and software by default):
    # each 451 here would queue a notice that the broken table itself holds back.
    "notify_classes =",
)


@pytest.fixture(scope="module")
def battery(postern_bin: Path) -> Iterator[Battery]:
    if os.geteuid() != 0:
        pytest.skip("needs root (a root instance with Postfix's privilege model)")
    u = ensure_user()
    inst = Instance.create(postern_bin, user=None)
    peer = Peer()
    b = Battery(inst, peer)
    try:
        vdir = b.vbase / "vexample.test"
        vdir.mkdir(parents=True)
        for d in (b.vbase, vdir):
            os.chown(d, u.pw_uid, u.pw_gid)
        vmailbox = b.source("vmailbox", "@vexample.test vexample.test/fc/\n")
        inst.run("postconf", "-e", *BASE, f"relayhost = [127.0.0.1]:{peer.port}",
                 f"virtual_mailbox_base = {b.vbase}", f"virtual_mailbox_maps = texthash:{vmailbox}",
                 f"virtual_uid_maps = static:{u.pw_uid}", f"virtual_gid_maps = static:{u.pw_gid}")
        b.remember_base()
        inst.start()
        wait_port(inst.port)
        yield b
    finally:
        try:
            inst.close()
        finally:
            peer.close()


@pytest.fixture(autouse=True)
def _report_maillog(request: pytest.FixtureRequest, battery: Battery) -> None:
    request.node.postern_instances = [battery.inst]


def _deferred_then_delivered(b: Battery, c: Case) -> None:
    b.sendmail(c.rcpt, c.name)
    line = b.wait_status(c.rcpt, "deferred")
    assert "dsn=4.3." in line, line
    print(f"\n{c.name}: {line.split(': ', 1)[1]}")
    # Not delivered, not bounced: the message waits in the queue.
    assert not [l for l in b.lines(c.rcpt) if "status=sent" in l or "status=bounced" in l], b.lines(c.rcpt)
    assert b.inst.postqueue_json(), "the message left the queue"
    b.configure(c.repair(b))
    b.flush()
    line = b.wait_status(c.rcpt, "sent")
    assert not [l for l in b.lines(c.rcpt) if "status=bounced" in l], b.lines(c.rcpt)


def _refused_then_accepted(b: Battery, c: Case) -> None:
    stage, code, text = b.smtp(c.sender, c.rcpt, c.name)
    assert code == 451 and text.startswith((b"4.3.0", b"4.3.5")), (stage, code, text)
    print(f"\n{c.name}: {stage} {code} {text.decode()}")
    assert not b.lines(c.rcpt), b.lines(c.rcpt)
    b.configure(c.repair(b))
    stage, code, text = b.smtp(c.sender, c.rcpt, c.name)
    assert (stage, code) == ("DATA", 250), (stage, code, text)
    b.wait_status(c.rcpt, "sent")


def _kept_then_delivered(b: Battery, c: Case) -> None:
    """A local submission that cleanup cannot take stays in maildrop/ (pickup
    retries it); it is neither queued nor bounced."""
    before = b.inst.log().count("will retry")
    b.sendmail(c.rcpt, c.name)

    def outcome() -> str | None:
        if b.inst.log().count("will retry") > before:
            return "kept in maildrop/"
        # incoming/ holds cleanup's file while it works (removed when it fails): only
        # a file qmgr took, or a delivery attempt, shows cleanup accepted the message.
        taken = [p for p in b.inst.queue_files()
                 if "/maildrop/" not in str(p) and "/incoming/" not in str(p)]
        if taken or b.lines(c.rcpt):
            return "accepted by cleanup"
        return None
    got = b.inst.wait_for(outcome, timeout=WAIT, what="pickup keeps the file")
    assert got == "kept in maildrop/", got
    assert [p for p in b.inst.queue_files() if "/maildrop/" in str(p)], b.inst.queue_files()
    assert not b.lines(c.rcpt), b.lines(c.rcpt)
    print(f"\n{c.name}: kept in maildrop/")
    b.configure(c.repair(b))
    b.wait_status(c.rcpt, "sent")


@pytest.mark.parametrize("case", [
    pytest.param(c, id=c.name, marks=[pytest.mark.xfail(reason=c.known, strict=True)] if c.known else [])
    for c in CASES])
def test_broken_table_fails_closed(battery: Battery, case: Case) -> None:
    b = battery
    b.configure(case.broken(b))
    try:
        if case.via == "smtp":
            _refused_then_accepted(b, case)
        elif case.via == "pickup":
            _kept_then_delivered(b, case)
        else:
            _deferred_then_delivered(b, case)
        b.inst.wait_for(lambda: not b.inst.postqueue_json(), timeout=WAIT, what="queue empty")
    finally:
        # Back to the base configuration, and nothing left queued for the next case.
        b.inst.run("postsuper", "-d", "ALL", check=False)
        b.restore(case.unset)
