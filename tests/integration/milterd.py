#!/usr/bin/env python3
"""milterd.py -- a scripted Sendmail-milter server for the tests (raw protocol, no library).

It speaks the milter wire protocol itself (4-byte length, command byte, data) so that a
test can make it do anything, including what a broken milter does. Standard library only.

In a test (a thread per connection, in-process):

    from milterd import Milterd
    script = {"on": {"rcpt": [{"if": "bad@", "do": "reject"}],
                     "eom": {"modify": [{"add_header": ["X-Scanned", "yes"]}]}}}
    with Milterd(script, listen="inet:127.0.0.1:0") as m:      # or "unix:/path/m.sock"
        ...   # smtpd_milters = m.endpoint   ("inet:127.0.0.1:PORT" / "unix:/path")
        m.sessions                                           # what it received, see below
        m.wait_for(lambda s: any(e["event"] == "eom" for e in s["events"]), timeout=5)

As a process (the Rust crate tests start it this way):

    python3 milterd.py --listen inet:127.0.0.1:0 --script script.json --record out.json
    # prints "READY inet:127.0.0.1:PORT" once listening; SIGTERM ends it.
    # out.json is rewritten after every event: {"sessions": [...]}.

Script (JSON; every key optional):

    {"version": 6,              # SMFIC_OPTNEG reply: protocol version (default: the MTA's)
     "actions": 511,            # SMFIF_* actions asked for (default 0x1ff, all)
     "protocol": 0,             # SMFIP_* flags (e.g. 0x80 no header replies, 0x100000 leadspc)
     "symlists": {"eom": "i {msg_id}"},   # macro lists by stage (connect helo mail rcpt data eom eoh)
     "optneg": ACTION,          # misbehave at negotiation instead of answering (garbage, close…)
     "on": {"connect"|"helo"|"mail"|"rcpt"|"data"|"header"|"eoh"|"body"|"eom"|"unknown": ACTION or [RULE, …]}}

    RULE   = {"if": "substring of the event text", "do": ACTION}   (no "if": always; first match wins)
    ACTION = "continue" | "accept" | "reject" | "tempfail" | "discard" | "skip" | "shutdown"
           | "progress"                      (SMFIR_PROGRESS, then continue)
           | "close"                         (close the connection, no reply)
           | "noreply"                       (send nothing, keep reading)
           | {"reply": "550 5.7.1 text"}     (SMFIR_REPLYCODE; multi-line with "\\r\\n")
           | {"quarantine": "reason", "then": ACTION}
           | {"modify": [MOD, …], "then": ACTION}       (then defaults to "continue")
           | {"garbage": "hex"}              (these raw bytes instead of a reply)
           | {"oversized": true}             (a length of 0x7fffffff)
           | {"truncate": true}              (a header announcing 100 bytes, 3 sent, then close)
           | {"stall": SECONDS}              (sleep, then close)
           | {"raw": ["c", "hex data"]}      (one packet with this code and data)
    MOD    = {"add_header": [name, value]} | {"insert_header": [index, name, value]}
           | {"change_header": [index, name, value]} | {"delete_header": [index, name]}
           | {"replace_body": "text"} (sent as is, in 65535-byte chunks)
           | {"add_rcpt": "<a@b>"} | {"add_rcpt_par": ["<a@b>", "ARGS"]} | {"del_rcpt": "<a@b>"}
           | {"change_from": "<s@b>"} | {"change_from": ["<s@b>", "ARGS"]} | {"quarantine": "reason"}

Event text matched by "if": connect "hostname addr", helo the name, mail/rcpt the arguments
joined by spaces, header "Name: value", body the chunk, eom the whole body, unknown the command.
Events the MTA negotiated as no-reply (the script's "protocol" NR_* flags) get no reply.

Record (m.sessions, and the --record file): one entry per connection,
    {"id": N, "negotiate": {"version", "actions", "protocol"},       # what the MTA offered
     "events": [{"event": "mail", "args": ["<a@b>", "SIZE=10"], "macros": {"i": "QID"}}, …],
     "messages": [{"headers": [[name, value], …], "body": "…", "macros": {…eom macros}}, …],
     "closed": bool}
Header values are recorded as received (Sendmail eats the leading space unless leadspc).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import struct
import sys
import threading
import time

STAGES = {"connect": 0, "helo": 1, "mail": 2, "rcpt": 3, "data": 4, "eom": 5, "eoh": 6}
EVENTS = {b"C": "connect", b"H": "helo", b"M": "mail", b"R": "rcpt", b"T": "data", b"L": "header",
          b"N": "eoh", b"B": "body", b"E": "eom", b"U": "unknown", b"A": "abort", b"Q": "quit",
          b"K": "quit"}
NO_REPLY_FLAG = {"connect": 1 << 12, "helo": 1 << 13, "mail": 1 << 14, "rcpt": 1 << 15,
                 "data": 1 << 16, "unknown": 1 << 17, "header": 1 << 7, "eoh": 1 << 18,
                 "body": 1 << 19}
SIMPLE = {"continue": b"c", "accept": b"a", "reject": b"r", "tempfail": b"t", "discard": b"d",
          "skip": b"s", "shutdown": b"4"}
CHUNK = 65535


def packet(code: bytes, data: bytes = b"") -> bytes:
    return struct.pack(">I", len(data) + 1) + code + data


def z(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape") + b"\0"


def strings(data: bytes) -> list[str]:
    parts = data.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    return [p.decode("utf-8", "replace") for p in parts]


def mod_packets(mod: dict) -> bytes:
    (kind, arg), = mod.items()
    if kind == "add_header":
        return packet(b"h", z(arg[0]) + z(arg[1]))
    if kind == "insert_header":
        return packet(b"i", struct.pack(">I", arg[0]) + z(arg[1]) + z(arg[2]))
    if kind == "change_header":
        return packet(b"m", struct.pack(">I", arg[0]) + z(arg[1]) + z(arg[2]))
    if kind == "delete_header":
        return packet(b"m", struct.pack(">I", arg[0]) + z(arg[1]) + z(""))
    if kind == "replace_body":
        raw = arg.encode("utf-8", "surrogateescape")
        return b"".join(packet(b"b", raw[i:i + CHUNK]) for i in range(0, len(raw), CHUNK)) or packet(b"b")
    if kind == "add_rcpt":
        return packet(b"+", z(arg))
    if kind == "add_rcpt_par":
        return packet(b"2", z(arg[0]) + z(arg[1]))
    if kind == "del_rcpt":
        return packet(b"-", z(arg))
    if kind == "change_from":
        sender, args = (arg, None) if isinstance(arg, str) else (arg[0], arg[1])
        return packet(b"e", z(sender) + (z(args) if args is not None else b""))
    if kind == "quarantine":
        return packet(b"q", z(arg))
    raise ValueError(f"milterd: unknown modification {kind!r}")


class Close(Exception):
    """The script says: drop the connection (after sending args[0], if given)."""


def render(action) -> bytes | None:
    """The bytes for an ACTION; None = no reply; raises Close to hang up."""
    if isinstance(action, str):
        if action in SIMPLE:
            return packet(SIMPLE[action])
        if action == "progress":
            return packet(b"p") + packet(b"c")
        if action == "noreply":
            return None
        if action == "close":
            raise Close()
        raise ValueError(f"milterd: unknown action {action!r}")
    if "reply" in action:
        return packet(b"y", z(action["reply"]))
    if "quarantine" in action:
        return packet(b"q", z(action["quarantine"])) + (render(action.get("then", "continue")) or b"")
    if "modify" in action:
        mods = b"".join(mod_packets(m) for m in action["modify"])
        return mods + (render(action.get("then", "continue")) or b"")
    if "garbage" in action:
        return bytes.fromhex(action["garbage"])
    if action.get("oversized"):
        return struct.pack(">I", 0x7FFFFFFF) + b"c"
    if action.get("truncate"):
        raise Close(struct.pack(">I", 100) + b"hX\0")
    if "stall" in action:
        time.sleep(float(action["stall"]))
        raise Close()
    if "raw" in action:
        code, hexdata = action["raw"]
        return packet(code.encode(), bytes.fromhex(hexdata))
    raise ValueError(f"milterd: unknown action {action!r}")


def choose(spec, text: str):
    """The ACTION for an event: a plain ACTION, or the first matching RULE."""
    if spec is None:
        return "continue"
    if isinstance(spec, list):
        for rule in spec:
            if "if" not in rule or rule["if"] in text:
                return rule["do"]
        return "continue"
    return spec


class Session:
    """One MTA connection: negotiation, events, recording."""

    def __init__(self, server: "Milterd", conn: socket.socket, sid: int):
        self.server, self.conn = server, conn
        self.rec = {"id": sid, "negotiate": None, "events": [], "messages": [], "closed": False}
        self.macros: dict[str, dict[str, str]] = {}
        self.headers: list[list[str]] = []
        self.body = b""
        self.protocol = int(server.script.get("protocol", 0))

    def recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.conn.recv(n - len(buf))
            if not chunk:
                raise EOFError()
            buf += chunk
        return buf

    def run(self) -> None:
        try:
            while True:
                (length,) = struct.unpack(">I", self.recv_exact(4))
                if length == 0 or length > 64 << 20:
                    return
                data = self.recv_exact(length)
                with self.server.lock:
                    todo = self.handle(data[:1], data[1:])
                try:
                    out = render(todo[1]) if todo and todo[0] == "action" else (todo or (None, None))[1]
                except Close as last:
                    if last.args:
                        self.conn.sendall(last.args[0])
                    raise
                if out:
                    self.conn.sendall(out)
        except (EOFError, Close, OSError):
            pass
        finally:
            with self.server.lock:
                self.rec["closed"] = True
            self.server.save()
            try:
                self.conn.close()
            except OSError:
                pass

    def handle(self, code: bytes, data: bytes) -> tuple[str, object] | None:
        """Records the packet; returns ("bytes", b) or ("action", ACTION) to answer, or None."""
        script = self.server.script
        if code == b"O":
            version, actions, protocol = struct.unpack(">III", data[:12])
            self.rec["negotiate"] = {"version": version, "actions": actions, "protocol": protocol}
            self.server.save()
            if "optneg" in script:
                return ("action", script["optneg"])
            lists = b"".join(struct.pack(">I", STAGES[k]) + z(v)
                             for k, v in script.get("symlists", {}).items())
            reply = struct.pack(">III", int(script.get("version", version)),
                                int(script.get("actions", 0x1FF)), self.protocol)
            return ("bytes", packet(b"O", reply + lists))
        if code == b"D":
            names = strings(data[1:])
            self.macros[data[:1].decode("latin-1")] = dict(zip(names[0::2], names[1::2]))
            return None
        name = EVENTS.get(code)
        if name is None:
            raise Close()
        args, text = self.args(name, data)
        self.record(name, code, args)
        if name in ("abort", "quit"):
            if name == "quit":
                raise Close()
            self.headers, self.body = [], b""
            return None
        if self.protocol & NO_REPLY_FLAG.get(name, 0):
            return None
        return ("action", choose(script.get("on", {}).get(name), text))

    def args(self, name: str, data: bytes) -> tuple[list, str]:
        if name == "connect":
            host, _, rest = data.partition(b"\0")
            fam = rest[:1].decode("latin-1")
            port = struct.unpack(">H", rest[1:3])[0] if fam != "U" and len(rest) >= 3 else 0
            addr = strings(rest[3:])[0] if fam != "U" and len(rest) > 3 else ""
            args = [host.decode("utf-8", "replace"), fam, port, addr]
            return args, f"{args[0]} {addr}"
        if name == "header":
            n, v = (strings(data) + ["", ""])[:2]
            self.headers.append([n, v])
            return [n, v], f"{n}: {v}"
        if name == "body":
            self.body += data
            return [len(data)], data.decode("utf-8", "replace")
        if name == "eom":
            body = self.body.decode("utf-8", "replace")
            self.rec["messages"].append({"headers": self.headers, "body": body,
                                         "macros": self.macros.get("E", {})})
            self.headers, self.body = [], b""
            return [], body
        args = strings(data)
        return args, " ".join(args)

    def record(self, name: str, code: bytes, args: list) -> None:
        macros = self.macros.get(code.decode("latin-1"), {})
        self.rec["events"].append({"event": name, "args": args, "macros": macros})
        self.server.save()


class Milterd:
    """The server: a listening socket and a thread per connection."""

    def __init__(self, script: dict | None = None, listen: str = "inet:127.0.0.1:0",
                 record: str | None = None):
        self.script = script or {}
        self.record_path = record
        self.sessions: list[dict] = []
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.threads: list[threading.Thread] = []
        kind, _, where = listen.partition(":")
        if kind == "inet":
            host, _, port = where.rpartition(":")
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((host.strip("[]"), int(port)))
            self.endpoint = f"inet:{host}:{self.sock.getsockname()[1]}"
        elif kind in ("unix", "local"):
            if os.path.exists(where):
                os.unlink(where)
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(where)
            os.chmod(where, 0o666)
            self.endpoint = f"unix:{where}"
        else:
            raise ValueError(f"milterd: listen on inet:host:port or unix:path, not {listen!r}")
        self.sock.listen(64)
        self.stopping = False
        self.acceptor = threading.Thread(target=self._accept, name="milterd", daemon=True)

    def start(self) -> "Milterd":
        self.acceptor.start()
        return self

    def __enter__(self) -> "Milterd":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.acceptor.join(timeout=5)

    def _accept(self) -> None:
        sid = 0
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            sid += 1
            session = Session(self, conn, sid)
            with self.lock:
                self.sessions.append(session.rec)
            t = threading.Thread(target=session.run, name=f"milterd-{sid}", daemon=True)
            self.threads.append(t)
            t.start()

    def save(self) -> None:
        """Wake waiters; rewrite the record file (atomically)."""
        with self.changed:
            self.changed.notify_all()
            if self.record_path:
                tmp = f"{self.record_path}.tmp{threading.get_ident()}"
                with open(tmp, "w") as f:
                    json.dump({"sessions": self.sessions}, f, indent=1)
                os.replace(tmp, self.record_path)

    def wait_for(self, pred, timeout: float = 10.0) -> dict:
        """The first session for which pred(session) holds; AssertionError after timeout."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for s in self.sessions:
                    if pred(s):
                        return s
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"milterd: no matching session in {timeout}s: {self.sessions}")
                self.changed.wait(left)

    def events(self, name: str | None = None) -> list[dict]:
        """Every recorded event (of one name), all sessions, in order."""
        with self.lock:
            return [e for s in self.sessions for e in s["events"] if name is None or e["event"] == name]


def main() -> int:
    ap = argparse.ArgumentParser(description="scripted milter server for tests")
    ap.add_argument("--listen", default="inet:127.0.0.1:0")
    ap.add_argument("--script", help="JSON script file")
    ap.add_argument("--record", help="JSON record file, rewritten after every event")
    a = ap.parse_args()
    script = {}
    if a.script:
        with open(a.script) as f:
            script = json.load(f)
    server = Milterd(script, a.listen, a.record).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print(f"READY {server.endpoint}", flush=True)
    done.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
