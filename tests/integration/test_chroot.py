"""test_chroot.py -- master.cf's chroot column (issue 11 §5), in a root instance under
`postern start` with Debian's stock master.cf (only the SMTP listener moved to a free
loopback port; qmgr also marked `y` so that it runs in the jail too).

* every running daemon of a chroot `y` service has the queue directory as its root
  (`/proc/PID/root`); local, which is `n`, has `/`;
* `postern start` copied the system files into QUEUE/etc (root's, 0644); `reload` refreshes
  them and the new generation of daemons is jailed too; a table only root can read fails
  closed in the jailed cleanup (tables are opened with the daemon's rights);
* mail flows from inside the jail: SMTP in (STARTTLS with a key only root reads, unknown
  local users refused through proxy:unix:passwd.byname) and sendmail/pickup to local
  delivery; relay to
  Postfix's smtp-sink through an MX found by the chrooted smtp client with the loopback
  DNS server named in the jail's etc/resolv.conf (no dns_servers); a DSN from the chrooted
  error and bounce daemons; `mailq` through the chrooted showq;
* a jail missing a file a chrooted daemon needs: `check` and `start` refuse, naming it
  (resolv.conf made unreadable in a private mount namespace; a builtin SASL file outside
  the jail); `y` on local, whose mailboxes lie outside the queue, is refused;
* a daemon told to chroot (`-j`) that is not root stops with a fatal error, as Postfix's.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import smtplib
import socket
import ssl
import stat
import subprocess
import time
from pathlib import Path

import pytest

from dnsserver import DnsServer
from postern import COMMAND_TIMEOUT, free_port
from test_smtp_client import Sink

STOCK = Path("/etc/postfix/master.cf")
if not STOCK.exists():
    STOCK = Path("/usr/share/postfix/master.cf.dist")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root"),
    pytest.mark.skipif(not STOCK.exists(), reason="Debian's postfix master.cf not installed"),
]

MSG = b"From: %s\nSubject: %s\n\nbody\n"


def postconf(inst, *settings: str) -> None:
    inst.run("postconf", "-e", *settings)


def stock_master(inst, chroot_qmgr: bool = True) -> list[str]:
    """Debian's master.cf with the smtp listener on the instance's port; returns the
    names of the chroot `y` services."""
    text = STOCK.read_text()
    text = re.sub(r"(?m)^smtp(\s+inet)", rf"{inst.listen}\1", text)
    if chroot_qmgr:
        text = re.sub(r"(?m)^(qmgr\s+unix\s+\S+\s+\S+\s+)n", r"\1y", text)
    (inst.root / "master.cf").write_text(text)
    jailed = []
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 8 and not line.startswith((" ", "\t", "#")) and f[4] == "y":
            jailed.append(f[7])
    return jailed


def daemons(inst) -> list[tuple[int, str, str]]:
    """(pid, program, root directory) of every live daemon of the instance."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            argv = Path(f"/proc/{d}/cmdline").read_bytes().split(b"\0")
            root = os.readlink(f"/proc/{d}/root")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv]
        if "-c" in words and words[words.index("-c") + 1:][:1] == [str(inst.root)] and "-n" in words:
            out.append((int(d), Path(words[0]).name, root))
    return out


def dns_server(zone: dict) -> tuple[DnsServer, str]:
    """A DNS server on port 53 (resolv.conf has no port) of a random loopback address."""
    for _ in range(5):
        host = f"127.{random.randint(1, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"
        try:
            return DnsServer(zone, host=host, port=53), host
        except OSError:
            continue
    pytest.skip("no loopback address with a free port 53")



@pytest.mark.skipif(shutil.which("smtp-sink") is None, reason="smtp-sink not installed")
def test_stock_master_cf_runs_chrooted_and_mail_flows(root_instance):
    inst = root_instance
    jailed = stock_master(inst)
    queue = inst.root / "queue"
    sink_port, down_port, lmtp_port = free_port(), free_port(), free_port()
    postconf(inst, f"relayhost = remote.test:{sink_port}",
             "transport_maps = inline:{ { err.test = error:5.7.1 no mail here }, "
             f"down.test=smtp:[127.0.0.1]:{down_port}, discard.test=discard, "
             f"lmtp.test=lmtp:[127.0.0.1]:{lmtp_port} }}",
             "smtp_connect_timeout = 2s", "minimal_backoff_time = 300s",
             # anvil counts loopback clients too; flush keeps a log for down.test.
             "smtpd_client_event_limit_exceptions =", "fast_flush_domains = down.test")
    # A TLS key only root reads (Debian's is 0640 root:ssl-cert): read before the chroot.
    tls = inst.base / "tls"
    tls.mkdir()
    key, cert = tls / "key.pem", tls / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
                    "-subj", "/CN=mx.localhost"], check=True, capture_output=True, timeout=60)
    key.chmod(0o600)
    postconf(inst, f"smtpd_tls_cert_file = {cert}", f"smtpd_tls_key_file = {key}",
             "smtpd_tls_security_level = may",
             "local_recipient_maps = proxy:unix:passwd.byname")
    zone = {("remote.test", "MX"): [(10, "mx.remote.test")],
            ("mx.remote.test", "A"): ["127.0.0.1"]}
    dns, host = dns_server(zone)
    sink = lmtp_sink = None
    try:
        sink, lmtp_sink = Sink(sink_port), Sink(lmtp_port, "-L")
        with dns:
            r = inst.run("check", check=False)
            assert r.returncode == 0, r.stderr.decode()
            inst.start()
            # start copied the system files into the jail, root's and 0644.
            for name in ("hosts", "services", "resolv.conf"):
                f = queue / "etc" / name
                st = f.stat()
                assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o644), name
                assert f.read_bytes() == (Path("/etc") / name).read_bytes(), name
            # The smtp client reads the jail's resolv.conf (not /etc's) when it starts.
            (queue / "etc" / "resolv.conf").write_text(f"nameserver {host}\n")

            inst.sendmail(["-f", "root@localhost", "root@localhost"], MSG % (b"root", b"picked up"))
            with smtplib.SMTP("127.0.0.1", inst.port, timeout=COMMAND_TIMEOUT) as s:
                tls_ctx = ssl.create_default_context()
                tls_ctx.check_hostname, tls_ctx.verify_mode = False, ssl.CERT_NONE
                s.starttls(context=tls_ctx)
                with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                    s.sendmail("root@localhost", ["no-such-user@localhost"], b"x\n")
                code, text = refused.value.recipients["no-such-user@localhost"]
                assert (code, b"User unknown in local recipient table" in text) == (550, True), text
                s.sendmail("root@localhost", ["root@localhost"], MSG % (b"root", b"over smtp"))
                s.sendmail("root@localhost", ["user@remote.test"], MSG % (b"root", b"relayed"))
                s.sendmail("root@localhost", ["x@err.test"], MSG % (b"root", b"refused"))
                s.sendmail("root@localhost", ["y@down.test"], MSG % (b"root", b"deferred"))
                s.sendmail("root@localhost", ["z@discard.test"], MSG % (b"root", b"discarded"))
                s.sendmail("root@localhost", ["l@lmtp.test"], MSG % (b"root", b"over lmtp"))
            relayed = inst.wait_for(
                lambda: [l for l in inst.log().splitlines()
                         if "to=<user@remote.test>" in l and "status=sent" in l],
                what="relayed to smtp-sink")
            assert f"relay=mx.remote.test[127.0.0.1]:{sink_port}" in relayed[0], relayed
            # The MX came from the server the jail's resolv.conf names.
            assert [q for q in dns.queries if q[0].rstrip(".").lower() == "remote.test"], dns.queries
            # 3 local messages: pickup, SMTP, and the DSN for err.test.
            msgs = inst.wait_for_mail("root", 3)
            texts = [p.read_bytes() for p in msgs]
            assert any(b"Subject: picked up" in t for t in texts)
            assert any(b"Subject: over smtp" in t for t in texts)
            dsn = [t for t in texts if b"Undelivered Mail Returned to Sender" in t]
            assert dsn and b"no mail here" in dsn[0], texts
            inst.wait_for(lambda: "to=<y@down.test>" in inst.log() and "status=deferred" in inst.log(),
                          what="deferred")
            listing = inst.run("mailq").stdout.decode()
            assert "y@down.test" in listing, listing
            inst.wait_for(lambda: "to=<z@discard.test>" in inst.log(), what="discarded")
            inst.wait_for(lambda: re.search(r"lmtp\[\d+\]: \w+: to=<l@lmtp.test>.*status=sent",
                                            inst.log()), what="delivered over LMTP")
            inst.run("postqueue", "-s", "down.test")  # through the chrooted flush

            procs = daemons(inst)
            running = {name for _, name, _ in procs}
            assert re.search(r"disconnect from localhost.* starttls=1 ", inst.log()), inst.log_excerpt()
            for want in ("smtpd", "cleanup", "pickup", "qmgr", "smtp", "bounce", "error",
                         "discard", "lmtp", "showq", "flush", "anvil", "proxymap", "local"):
                assert want in running, (want, procs)
            # (A process master starts at this moment is not jailed yet: look again.)
            def wrong() -> list:
                return [p for p in daemons(inst) if (p[2] == str(queue)) != (p[1] in jailed)
                        or p[2] not in (str(queue), "/")]
            inst.wait_for(lambda: not wrong(), timeout=5, what=f"jailed daemons: {wrong()}")

            # reload refreshes the jail's copies, and the new daemons are jailed again.
            (queue / "etc" / "hosts").write_text("# stale\n")
            before = inst.log().count("reload -- version")
            inst.reload()
            inst.wait_for(lambda: inst.log().count("reload -- version") > before, what="reloaded")
            assert (queue / "etc" / "hosts").read_bytes() == Path("/etc/hosts").read_bytes()
            with smtplib.SMTP("127.0.0.1", inst.port, timeout=COMMAND_TIMEOUT) as s:
                s.sendmail("root@localhost", ["root@localhost"], MSG % (b"root", b"after reload"))
            inst.wait_for_mail("root", 4)
            inst.wait_for(lambda: not wrong(), timeout=5, what=f"jailed daemons: {wrong()}")

            log = inst.log()
            assert "fatal" not in log and "warning" not in log.replace(
                "warning: postlog", ""), inst.log_excerpt()

            # Tables are opened with the daemon's own rights before the chroot: one only
            # root reads fails closed in the jailed cleanup, as it does unjailed.
            secret = inst.base / "canonical"
            secret.write_text("/^nobody@/ x@y\n")
            secret.chmod(0o600)
            postconf(inst, f"sender_canonical_maps = regexp:{secret}")
            before = inst.log().count("reload -- version")
            inst.reload()
            inst.wait_for(lambda: inst.log().count("reload -- version") > before, what="reloaded")
            with smtplib.SMTP("127.0.0.1", inst.port, timeout=COMMAND_TIMEOUT) as s:
                with pytest.raises(smtplib.SMTPDataError) as refused:
                    s.sendmail("root@localhost", ["root@localhost"], MSG % (b"root", b"unread"))
            assert refused.value.smtp_code == 451, refused.value
            assert "sender_canonical_maps" in inst.log() and "Permission denied" in inst.log()
    finally:
        dns.close()
        for p in (sink, lmtp_sink):
            if p is not None:
                p.close()


def test_jail_missing_a_file_refuses_start(root_instance):
    inst = root_instance
    stock_master(inst, chroot_qmgr=False)
    postconf(inst, "dns_servers =")
    queue = inst.root / "queue"
    assert not (queue / "etc" / "resolv.conf").exists()
    # The system has no resolv.conf to copy (a private mount namespace where it is not a
    # regular file): the chrooted smtp and smtpd would have no name server.
    argv = [str(inst.binary), "-c", str(inst.root)]
    hide = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind /dev/null /etc/resolv.conf && exec "$@"', "sh"]
    # (A container without CAP_SYS_ADMIN cannot: then only the SASL case below runs.)
    can_hide = subprocess.run([*hide, "true"], capture_output=True, timeout=30).returncode == 0
    for verb in ("check", "start") if can_hide else ():
        r = subprocess.run([*hide, *argv, verb], capture_output=True, timeout=COMMAND_TIMEOUT,
                           env=inst.env())
        err = r.stderr.decode()
        assert r.returncode == 1, (verb, err)
        assert f"the jail {queue} lacks etc/resolv.conf" in err, (verb, err)
        assert "service smtp/unix" in err, err
    assert inst.master_pid() is None
    # With dns_servers the jail needs no resolv.conf; a builtin SASL file outside the
    # jail is named (inside the jail its path is below the queue directory).
    sasl = inst.root / "sasl-users"
    sasl.write_text("joe@example.org:{PLAIN}secret\n")
    postconf(inst, "dns_servers = 127.0.0.1:1", "smtpd_sasl_auth_enable = yes",
             "smtpd_sasl_type = builtin", f"smtpd_sasl_path = {sasl}")
    r = inst.run("start", check=False)
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert f"lacks {queue}{sasl}" in err and "resolv.conf" not in err, err
    assert inst.master_pid() is None
    # local delivers outside the queue: it cannot be jailed.
    postconf(inst, "smtpd_sasl_auth_enable = no")
    master = inst.root / "master.cf"
    master.write_text(re.sub(r"(?m)^(local\s+unix\s+\S+\s+\S+\s+)n", r"\1y", master.read_text()))
    r = inst.run("start", check=False)
    err = r.stderr.decode()
    assert r.returncode == 1 and "service local/unix: chroot=y is not possible for local" in err, err
    assert inst.master_pid() is None


def test_chroot_needs_root(root_instance):
    """A daemon given -j without root privileges stops before serving anything."""
    inst = root_instance
    r = subprocess.run(["pickup", "-c", str(inst.root), "-n", "pickup", "-t", "unix", "-u", "-j"],
                       executable=str(inst.binary), user=65534, group=65534, extra_groups=[],
                       capture_output=True, timeout=COMMAND_TIMEOUT,
                       env={**inst.env(), "POSTERN_DAEMON": "1"})
    err = r.stderr.decode()
    assert r.returncode != 0, err
    assert f"fatal: chroot({inst.root}/queue): service pickup has chroot=y in master.cf, " \
           "which needs a master started as root" in err, err
