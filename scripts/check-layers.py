#!/usr/bin/env python3
"""check-layers.py -- enforce the edges that must never exist (DESIGN.md, STYLE.md).

Reads `cargo metadata --format-version 1 --no-deps` for the workspace and checks:

  1. Layering of postern-* crates (all dependency kinds: normal, build, dev):
       layer 0  postern-config, postern-qfile, postern-ipc, postern-mail, postern-smtp-proto,
                postern-help (the manual: page sources and renderers)
                -> only other layer-0 crates and the pure allowlist below
                   (normal/build deps); dev-deps may be any external crate
                   except the banned system crates.
       layer 1  postern-sys, postern-log, postern-queue, postern-queue-admin,
                postern-server              -> layer 0/1 only
       layer 2  every other postern-* crate  -> layer 0/1 only
                (no program depends on another program)
       binary   `postern`                    -> anything
  2. Layer 0 never depends on tokio, libc, nix, rustix, socket2 (any kind), and its
     sources (src/**/*.rs, outside a trailing #[cfg(test)] module) never mention
     std::fs, std::net, std::process, std::env or tokio.
  3. `unsafe` only in postern-sys: no `unsafe {`, `unsafe fn`, `unsafe impl`,
     `unsafe trait`, `unsafe extern` or `#[unsafe(...)]` in any other crate's
     .rs files; every layer-0 lib.rs has `#![forbid(unsafe_code)]`; every
     member's Cargo.toml except postern-sys has `[lints] workspace = true`.
  4. postern-queue-admin is a dependency only of cleanup, qmgr, pickup, postdrop,
     postsuper, flush (it releases deferred mail to incoming, as Postfix's
     flush renames queue files) and the `postern` binary.
  5. A crate named *-testkit appears only under [dev-dependencies].

Prints one line per violation and exits 1; prints "layers: ok (N crates)" and
exits 0 when clean; exits 2 when cargo metadata itself fails.

    python3 scripts/check-layers.py                  # check the workspace
    python3 scripts/check-layers.py --metadata F     # check a saved metadata JSON
    python3 scripts/check-layers.py --self-test      # prove the checker catches violations
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

LAYER0 = {"postern-config", "postern-qfile", "postern-ipc", "postern-mail", "postern-smtp-proto",
          "postern-help"}
LAYER1 = {"postern-sys", "postern-log", "postern-queue", "postern-queue-admin", "postern-server", "postern-table", "postern-dns", "postern-mailbox"}
BINARY = "postern"
UNSAFE_CRATE = "postern-sys"

# External crates a layer-0 crate may use (normal and build dependencies). Pure crates
# only: no I/O, no async runtime, no FFI. jiff (time zones read /usr/share/zoneinfo) is
# allowed from layer 1 up.
LAYER0_EXTERNAL_ALLOW = {"thiserror", "memchr", "bstr"}
# Never below layer 1, in any dependency kind.
LAYER0_BANNED = {"tokio", "libc", "nix", "rustix", "socket2", "mio"}

# STYLE.md rule 5: only the SMTP server and client speak SMTP or query DNS.
NETWORK_CRATES = {"postern-smtp-proto", "postern-dns"}
NETWORK_USERS = {"postern-smtpd", "postern-smtp", "postern"}
QUEUE_ADMIN = "postern-queue-admin"
QUEUE_ADMIN_USERS = {
    "postern-cleanup", "postern-qmgr", "postern-pickup", "postern-postdrop",
    "postern-postsuper", "postern-flush", BINARY,
}

# Mentions that make a layer-0 source impure.
IMPURE = [
    (re.compile(r"\bstd\s*::\s*(fs|net|process|env)\b"), "std::{}"),
    (re.compile(r"\bstd\s*::\s*\{[^}]*\b(fs|net|process|env)\b"), "std::{}"),
    (re.compile(r"\b(tokio)\b"), "{}"),
]
UNSAFE = re.compile(r"\bunsafe\s*(\{|fn\b|impl\b|trait\b|extern\b|\()")
FORBID = re.compile(r"#!\s*\[\s*forbid\s*\([^)]*\bunsafe_code\b[^)]*\)\s*\]")
CFG_TEST = re.compile(r"^\s*#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]")


def layer_of(name: str) -> int | None:
    """0, 1, 2 for postern library crates, 3 for the binary, 4 for test support
    (*-testkit, which may use anything and be used only as a dev-dependency),
    None for crates that are not ours."""
    if name.endswith("-testkit"):
        return 4
    if name == BINARY:
        return 3
    if name in LAYER0:
        return 0
    if name in LAYER1:
        return 1
    if name.startswith("postern-"):
        return 2
    return None


def strip_code(text: str) -> str:
    """Removes comments and string/char literals so that greps see only code.

    A small lexer, good enough for grep-level checks: line and (nested) block comments,
    "..." strings with escapes, r#"..."# raw strings, and b'x'/'x' char literals
    (lifetimes such as 'a are kept). Newlines are preserved so line numbers stay right.
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    if text[i] == "\n":
                        out.append("\n")
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 260]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")) or (
            c == "b" and re.match(r'br#*"', text[i:i + 260]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_"))
        ):
            m = re.match(r'b?r(#*)"', text[i:])
            assert m
            end = '"' + m.group(1)
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'":
            m = re.match(r"'(\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'\n])'", text[i:])
            if m:
                out.append("' '")
                i += m.end()
            else:  # a lifetime or label
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def rust_files(root: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in ("target", ".git")]
        files.extend(Path(dirpath) / f for f in filenames if f.endswith(".rs"))
    return sorted(files)


def without_trailing_test_module(code: str) -> str:
    """Cuts everything from the first `#[cfg(test)]` line on (tests sit at the bottom).

    Tests of a pure crate may read golden files; the purity rule is about the
    library itself. Code placed after a test module escapes this check: keep the
    test module last, as rustfmt and convention do.
    """
    lines = code.split("\n")
    for idx, line in enumerate(lines):
        if CFG_TEST.match(line):
            return "\n".join(lines[:idx])
    return code


def dep_kind(dep: dict) -> str:
    return dep.get("kind") or "normal"


def check(meta: dict) -> tuple[list[str], int]:
    """Returns (violations, number of workspace crates checked)."""
    members = set(meta.get("workspace_members", []))
    pkgs = [p for p in meta["packages"] if not members or p["id"] in members]
    problems: list[str] = []

    for pkg in sorted(pkgs, key=lambda p: p["name"]):
        name = pkg["name"]
        layer = layer_of(name)
        manifest = Path(pkg["manifest_path"])
        crate_dir = manifest.parent

        # --- dependency edges -------------------------------------------------
        for dep in pkg.get("dependencies", []):
            dname, kind = dep["name"], dep_kind(dep)
            dlayer = layer_of(dname)
            edge = f"{name} -> {dname} ({kind})"
            if dname.endswith("-testkit") and kind != "dev":
                problems.append(f"{edge}: a testkit crate may only be a dev-dependency")
            if dname in NETWORK_CRATES and name not in NETWORK_USERS and kind != "dev":
                problems.append(f"{edge}: only {', '.join(sorted(NETWORK_USERS))} may use {dname}")
            if dname == QUEUE_ADMIN and name not in QUEUE_ADMIN_USERS:
                problems.append(
                    f"{edge}: only {', '.join(sorted(QUEUE_ADMIN_USERS))} may use {QUEUE_ADMIN}"
                )
            if layer is None or layer >= 3 or dlayer == 4:
                continue
            if dlayer == 3:
                problems.append(f"{edge}: nothing may depend on the binary crate")
            elif layer == 0:
                if dlayer is not None and dlayer > 0:
                    problems.append(f"{edge}: layer 0 may depend only on layer 0")
                elif dlayer is None and dname in LAYER0_BANNED:
                    problems.append(f"{edge}: layer 0 must never depend on {dname}")
                elif dlayer is None and kind != "dev" and dname not in LAYER0_EXTERNAL_ALLOW:
                    problems.append(
                        f"{edge}: layer 0 may use only pure crates "
                        f"({', '.join(sorted(LAYER0_EXTERNAL_ALLOW))}); extend the allowlist "
                        f"in scripts/check-layers.py only for a crate without I/O"
                    )
            elif layer == 1:
                if dlayer is not None and dlayer > 1:
                    problems.append(f"{edge}: layer 1 may depend only on layers 0 and 1")
            elif layer == 2:
                if dlayer is not None and dlayer > 1:
                    problems.append(f"{edge}: no program depends on another program (layer 2 -> 2)")

        # --- lints table ------------------------------------------------------
        if name != UNSAFE_CRATE:
            try:
                toml = tomllib.loads(manifest.read_text())
            except (OSError, tomllib.TOMLDecodeError) as e:
                problems.append(f"{name}: cannot read {manifest}: {e}")
                toml = {}
            lints = toml.get("lints", {})
            if not (isinstance(lints, dict) and lints.get("workspace") is True):
                problems.append(f"{name}: Cargo.toml must have `[lints] workspace = true`")

        # --- sources ----------------------------------------------------------
        files = rust_files(crate_dir)
        if layer == 0:
            lib = Path(next((t["src_path"] for t in pkg.get("targets", []) if "lib" in t.get("kind", [])),
                            crate_dir / "src" / "lib.rs"))
            try:
                if not FORBID.search(strip_code(lib.read_text())):
                    problems.append(f"{name}: {lib.relative_to(crate_dir)} lacks #![forbid(unsafe_code)]")
            except OSError as e:
                problems.append(f"{name}: cannot read {lib}: {e}")
        for f in files:
            try:
                code = strip_code(f.read_text(errors="replace"))
            except OSError as e:
                problems.append(f"{name}: cannot read {f}: {e}")
                continue
            rel = f.relative_to(crate_dir)
            if name != UNSAFE_CRATE:
                for lineno, line in enumerate(code.split("\n"), 1):
                    if UNSAFE.search(line):
                        problems.append(f"{name}: {rel}:{lineno}: `unsafe` outside {UNSAFE_CRATE}")
            if layer == 0 and rel.parts[0] == "src":
                for lineno, line in enumerate(without_trailing_test_module(code).split("\n"), 1):
                    for pat, fmt in IMPURE:
                        m = pat.search(line)
                        if m:
                            what = fmt.format(m.group(1))
                            problems.append(f"{name}: {rel}:{lineno}: layer 0 must not use {what}")
                            break
    return problems, len(pkgs)


def cargo_metadata(manifest_dir: Path) -> dict:
    cmd = ["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline"]
    r = subprocess.run(cmd, cwd=manifest_dir, capture_output=True, text=True)
    if r.returncode != 0:  # --offline fails only when something must be fetched; retry online
        r = subprocess.run(cmd[:-1], cwd=manifest_dir, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        print("layers: cargo metadata failed", file=sys.stderr)
        sys.exit(2)
    return json.loads(r.stdout)


# --------------------------------------------------------------------------- self-test

def _fake_workspace(root: Path) -> dict:
    """A small fake workspace on disk plus its metadata, with known violations."""
    def crate(name: str, deps: list[tuple[str, str | None]], src: str, lints: bool = True) -> dict:
        d = root / name
        (d / "src").mkdir(parents=True)
        (d / "Cargo.toml").write_text(
            f'[package]\nname = "{name}"\n' + ("[lints]\nworkspace = true\n" if lints else "")
        )
        (d / "src" / "lib.rs").write_text(src)
        return {
            "name": name, "id": f"path+file://{d}#{name}@0.1.0",
            "manifest_path": str(d / "Cargo.toml"),
            "targets": [{"kind": ["lib"], "src_path": str(d / "src" / "lib.rs")}],
            "dependencies": [{"name": n, "kind": k} for n, k in deps],
        }

    pure = "#![forbid(unsafe_code)]\n//! uses std::fs in a comment only\nconst S: &str = \"unsafe { std::net }\";\n"
    pkgs = [
        crate("postern-ipc", [("thiserror", None), ("tempfile", "dev")], pure),
        crate("postern-config", [("jiff", None), ("postern-log", None), ("tokio", "dev")],
              "//! no forbid here\nuse std::{collections::HashMap, fs};\n"
              "#[cfg(test)]\nmod tests { use std::fs; }\n"),
        crate("postern-log", [("postern-config", None), ("jiff", None)],
              "fn f() { let r = 'a'; unsafe { core::hint::unreachable_unchecked() } }\n"),
        crate("postern-sys", [("libc", None)], "unsafe fn ok() {}\n", lints=False),
        crate("postern-queue-admin", [("postern-queue", None)], "", lints=True),
        crate("postern-queue", [("postern-sys", None)], "", lints=False),
        crate("postern-local", [("postern-queue-admin", None), ("postern-bounce", None),
                                ("postern-testkit", None)], "#[unsafe(no_mangle)] fn x() {}\n"),
        crate("postern-bounce", [("postern-queue", None), ("postern-testkit", "dev")], ""),
        crate("postern-testkit", [], ""),
        crate("postern-cleanup", [("postern-queue-admin", None), ("postern", None)], ""),
        crate("postern", [("postern-local", None), ("postern-queue-admin", None)], ""),
    ]
    return {"packages": pkgs, "workspace_members": [p["id"] for p in pkgs]}


EXPECTED = [
    "postern-config -> jiff (normal): layer 0 may use only pure crates",
    "postern-config -> postern-log (normal): layer 0 may depend only on layer 0",
    "postern-config -> tokio (dev): layer 0 must never depend on tokio",
    "postern-config: src/lib.rs lacks #![forbid(unsafe_code)]",
    "postern-config: src/lib.rs:2: layer 0 must not use std::fs",
    "postern-log: src/lib.rs:1: `unsafe` outside postern-sys",
    "postern-queue: Cargo.toml must have `[lints] workspace = true`",
    "postern-local -> postern-queue-admin (normal): only",
    "postern-local -> postern-bounce (normal): no program depends on another program",
    "postern-local -> postern-testkit (normal): a testkit crate may only be a dev-dependency",
    "postern-local: src/lib.rs:1: `unsafe` outside postern-sys",
    "postern-cleanup -> postern (normal): nothing may depend on the binary crate",
]
NOT_EXPECTED = [
    "postern-ipc",            # pure crate: comment and string mentions do not count
    "postern-sys",            # may use unsafe and its own [lints]
    "postern-bounce ->",      # testkit as a dev-dependency is fine
    "postern-log ->",         # layer 1 -> layer 0 is fine
    "postern-config: src/lib.rs:4",  # the #[cfg(test)] module may use std::fs
    "postern ->",             # the binary may depend on anything
]


def self_test() -> int:
    with tempfile.TemporaryDirectory(prefix="check-layers-") as tmp:
        meta = _fake_workspace(Path(tmp))
        problems, n = check(meta)
    failed = False
    for want in EXPECTED:
        if not any(p.startswith(want) for p in problems):
            print(f"self-test: MISSED violation: {want}")
            failed = True
    for bad in NOT_EXPECTED:
        hits = [p for p in problems if p.startswith(bad)]
        if hits:
            print(f"self-test: FALSE POSITIVE: {hits[0]}")
            failed = True
    extra = [p for p in problems if not any(p.startswith(w) for w in EXPECTED)]
    for p in extra:
        print(f"self-test: unexpected: {p}")
        failed = True
    if failed:
        print("self-test: FAILED; all findings were:")
        for p in problems:
            print(f"  {p}")
        return 1
    print(f"self-test: ok ({len(problems)} planted violations found in {n} fake crates)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--self-test", action="store_true", help="run against a fake workspace with violations")
    ap.add_argument("--metadata", type=Path, help="read cargo metadata JSON from this file")
    ap.add_argument("--manifest-dir", type=Path, default=Path(__file__).resolve().parent.parent,
                    help="workspace root (default: this repository)")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    meta = json.loads(args.metadata.read_text()) if args.metadata else cargo_metadata(args.manifest_dir)
    problems, n = check(meta)
    for p in problems:
        print(p)
    if problems:
        print(f"layers: {len(problems)} violation(s) in {n} crates", file=sys.stderr)
        return 1
    print(f"layers: ok ({n} crates)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
