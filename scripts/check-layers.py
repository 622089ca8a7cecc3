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
     sources (src/**/*.rs, outside #[cfg(test)] items and the files of
     `#[cfg(test)] mod NAME;`) never name std::fs, std::net, std::process, std::env,
     std::os, std::thread or tokio (also inside nested groups such as
     `use std::{io::{Read}, fs}`), never read the clock (`SystemTime::now`,
     `Instant::now`) and never read stdin (`stdin()`, `std::io::Stdin`).
     Code after a #[cfg(test)] item is checked like any other.
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
LAYER1 = {"postern-sys", "postern-log", "postern-queue", "postern-queue-admin", "postern-server", "postern-table", "postern-dns", "postern-mailbox", "postern-tls", "postern-milter", "postern-auth"}
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
NETWORK_USERS = {"postern-smtpd", "postern-smtp", "postern", "postern-auth"}
QUEUE_ADMIN = "postern-queue-admin"
QUEUE_ADMIN_USERS = {
    "postern-cleanup", "postern-qmgr", "postern-pickup", "postern-postdrop",
    "postern-postsuper", "postern-flush", BINARY,
}

# std paths that make a layer-0 source impure (a path equal to one of these or below it),
# found also inside nested use groups (see std_paths).
IMPURE_STD = ["fs", "net", "process", "env", "os", "thread", "io::stdin", "io::Stdin"]
# Other mentions that make a layer-0 source impure: (pattern, message).
IMPURE = [
    (re.compile(r"\b(tokio)\b"), "layer 0 must not use {}"),
    (re.compile(r"\b((?:SystemTime|Instant)\s*::\s*now)\b"), "layer 0 must not read the clock ({})"),
    (re.compile(r"\b(stdin)\s*\("), "layer 0 must not read {}"),
]
# Documented allowances: (crate, file relative to the crate, message prefix) that the
# purity check accepts. Keep each narrow and say why.
IMPURE_ALLOW: list[tuple[str, str, str]] = []
UNSAFE = re.compile(r"\bunsafe\s*(\{|fn\b|impl\b|trait\b|extern\b|\()")
FORBID = re.compile(r"#!\s*\[\s*forbid\s*\([^)]*\bunsafe_code\b[^)]*\)\s*\]")
CFG_TEST_ANY = re.compile(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]")


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


def _item_end(code: str, i: int) -> int:
    """End (exclusive) of the item starting at or after `i` in stripped code: skips
    further attributes, then runs to the `;` that ends a braceless item (`mod x;`,
    `use a::b;`) or to the brace closing the item's first `{`."""
    n = len(code)
    while True:
        m = re.compile(r"\s*#\s*!?\s*\[").match(code, i)
        if not m:
            break
        j, depth = m.end(), 1
        while j < n and depth:
            depth += {"[": 1, "]": -1}.get(code[j], 0)
            j += 1
        i = j
    depth = 0
    while i < n:
        c = code[i]
        if c == ";" and depth == 0:
            return i + 1
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth <= 0:
                return i + 1
        i += 1
    return n


def without_test_items(code: str) -> tuple[str, list[str]]:
    """Blanks every `#[cfg(test)]` item (keeping newlines, so line numbers stay right) and
    returns the rest plus the names of `#[cfg(test)] mod NAME;` declarations.

    Tests of a pure crate may read golden files; the purity rule is about the library
    itself. Only the item the attribute applies to is cut: code after a test module is
    checked like any other.
    """
    out, names, i = [], [], 0
    for m in CFG_TEST_ANY.finditer(code):
        if m.start() < i:
            continue
        end = _item_end(code, m.end())
        decl = re.match(r"\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", code[m.end():end])
        if decl:
            names.append(decl.group(1))
        out.append(code[i:m.start()])
        out.append("\n" * code.count("\n", m.start(), end))
        i = end
    out.append(code[i:])
    return "".join(out), names


def test_module_files(f: Path, names: list[str]) -> set[Path]:
    """The files of `#[cfg(test)] mod NAME;` declared in `f` (NAME.rs or NAME/mod.rs next
    to a lib.rs/main.rs/mod.rs, else under the directory named after `f`)."""
    base = f.parent if f.name in ("lib.rs", "main.rs", "mod.rs") else f.parent / f.stem
    return {q for n in names for q in (base / f"{n}.rs", base / n / "mod.rs")}


_IDENT = re.compile(r"\s*(r#)?([A-Za-z_][A-Za-z0-9_]*)")
_SEP = re.compile(r"\s*::\s*")


def _use_tree(code: str, i: int, depth: int = 0) -> list[tuple[int, str]]:
    """Parses a path or `{group}` at `i`: (offset of the leaf, path text) for each leaf."""
    ws = re.compile(r"\s*").match(code, i)
    i = ws.end() if ws else i
    if depth > 32 or i >= len(code):
        return []
    if code[i] == "{":
        leaves, i = [], i + 1
        while i < len(code):
            sub_start = i
            leaves.extend(_use_tree(code, i, depth + 1))
            # skip to the next `,` or the closing `}` at this level
            d = 0
            while i < len(code):
                c = code[i]
                if c == "{":
                    d += 1
                elif c == "}":
                    if d == 0:
                        return leaves
                    d -= 1
                elif c == "," and d == 0:
                    i += 1
                    break
                i += 1
            if i == sub_start:
                break
        return leaves
    m = _IDENT.match(code, i)
    if not m:
        return []
    sep = _SEP.match(code, m.end())
    if sep:  # `name::rest`
        rest = _use_tree(code, sep.end(), depth + 1)
        return [(o, f"{m.group(2)}::{p}") for o, p in rest] or [(m.start(2), m.group(2))]
    return [(m.start(2), m.group(2))]


def std_paths(code: str) -> list[tuple[int, str]]:
    """Every path under `std::` in stripped code, nested use groups expanded:
    `use std::{io::{Read}, fs}` gives `io::Read` and `fs` (with their offsets)."""
    found = []
    for m in re.finditer(r"\bstd\s*::\s*", code):
        found.extend(_use_tree(code, m.end()))
    return found


def impure_std(path: str) -> str | None:
    """The banned std path that `path` (relative to std) is or lies under."""
    for bad in IMPURE_STD:
        if path == bad or path.startswith(bad + "::"):
            return bad
    return None


def impurities(name: str, rel: Path, lib_code: str) -> list[str]:
    """The purity violations of one layer-0 source (its library code), allowances applied."""
    hits: list[tuple[int, str]] = []
    for off, path in std_paths(lib_code):
        bad = impure_std(path)
        if bad:
            hits.append((lib_code.count("\n", 0, off) + 1, f"layer 0 must not use std::{bad}"))
    for pat, fmt in IMPURE:
        for m in pat.finditer(lib_code):
            what = re.sub(r"\s+", "", m.group(1))
            hits.append((lib_code.count("\n", 0, m.start()) + 1, fmt.format(what)))
    out = []
    for lineno, msg in sorted(set(hits)):
        if any(c == name and Path(fr) == rel and msg.startswith(pre) for c, fr, pre in IMPURE_ALLOW):
            continue
        out.append(f"{name}: {rel}:{lineno}: {msg}")
    return out


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
        codes: dict[Path, str] = {}
        for f in files:
            try:
                codes[f] = strip_code(f.read_text(errors="replace"))
            except OSError as e:
                problems.append(f"{name}: cannot read {f}: {e}")
        # Library code of each file, and the files of `#[cfg(test)] mod NAME;` (tests).
        lib_codes: dict[Path, str] = {}
        test_files: set[Path] = set()
        for f, code in codes.items():
            lib_codes[f], test_mods = without_test_items(code)
            test_files |= test_module_files(f, test_mods)
        for f, code in codes.items():
            rel = f.relative_to(crate_dir)
            if name != UNSAFE_CRATE:
                for lineno, line in enumerate(code.split("\n"), 1):
                    if UNSAFE.search(line):
                        problems.append(f"{name}: {rel}:{lineno}: `unsafe` outside {UNSAFE_CRATE}")
            if layer == 0 and rel.parts[0] == "src" and f not in test_files:
                problems.extend(impurities(name, rel, lib_codes[f]))
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
    def crate(name: str, deps: list[tuple[str, str | None]], src: str, lints: bool = True,
              extra: dict[str, str] | None = None) -> dict:
        d = root / name
        (d / "src").mkdir(parents=True)
        (d / "Cargo.toml").write_text(
            f'[package]\nname = "{name}"\n' + ("[lints]\nworkspace = true\n" if lints else "")
        )
        (d / "src" / "lib.rs").write_text(src)
        for rel, text in (extra or {}).items():
            (d / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / "src" / rel).write_text(text)
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
        # The holes closed in issue 12: nested use groups, std::os, code after a test module.
        crate("postern-qfile", [], "#![forbid(unsafe_code)]\n"
              "use std::{io::{Read, Write}, fs};\n"                       # 2: fs in a nested group
              "use std::{collections::{HashMap}, os::unix::fs::MetadataExt};\n"  # 3: std::os
              "use std::{\n    io::{self, BufRead},\n    net::TcpStream,\n};\n"  # 6: net, multi-line
              "#[cfg(test)]\nmod tests {\n    use std::fs;\n}\n"        # 8-11: test module: fine
              "fn after() { let _ = std::env::var(\"X\"); }\n"          # 12: after the tests
              "#[cfg(test)]\nmod golden;\n"                               # a test file: fine
              "mod inner;\n",
              extra={"golden.rs": "use std::fs;\n", "inner.rs": "use std::process::Command;\n"}),
        # Clock, stdin, threads.
        crate("postern-mail", [], "#![forbid(unsafe_code)]\n"
              "fn t() -> u64 { std::time::SystemTime::now().elapsed().map_or(0, |d| d.as_secs()) }\n"
              "fn i() { let _ = Instant :: now(); }\n"                   # 3: imported Instant
              "fn r() { let _ = std::io::stdin(); }\n"                   # 4: std::io::stdin
              "use std::io::{self, stdin};\nfn s() { let _ = stdin(); }\n"  # 5 and 6
              "fn th() { std::thread::spawn(|| ()); }\n"                 # 7: threads
              "// SystemTime::now() in a comment, \"Instant::now\" in a string\n"
              "fn ok() -> std::time::Duration { std::time::Duration::ZERO }\n"
              "fn sin() -> std::io::Result<()> { let s = \"stdin()\"; Ok(()) }\n"),
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
    "postern-qfile: src/lib.rs:2: layer 0 must not use std::fs",
    "postern-qfile: src/lib.rs:3: layer 0 must not use std::os",
    "postern-qfile: src/lib.rs:6: layer 0 must not use std::net",
    "postern-qfile: src/lib.rs:12: layer 0 must not use std::env",
    "postern-qfile: src/inner.rs:1: layer 0 must not use std::process",
    "postern-mail: src/lib.rs:2: layer 0 must not read the clock (SystemTime::now)",
    "postern-mail: src/lib.rs:3: layer 0 must not read the clock (Instant::now)",
    "postern-mail: src/lib.rs:4: layer 0 must not use std::io::stdin",
    "postern-mail: src/lib.rs:4: layer 0 must not read stdin",
    "postern-mail: src/lib.rs:5: layer 0 must not use std::io::stdin",
    "postern-mail: src/lib.rs:6: layer 0 must not read stdin",
    "postern-mail: src/lib.rs:7: layer 0 must not use std::thread",
]
NOT_EXPECTED = [
    "postern-ipc",            # pure crate: comment and string mentions do not count
    "postern-sys",            # may use unsafe and its own [lints]
    "postern-bounce ->",      # testkit as a dev-dependency is fine
    "postern-log ->",         # layer 1 -> layer 0 is fine
    "postern-config: src/lib.rs:4",  # the #[cfg(test)] module may use std::fs
    "postern ->",             # the binary may depend on anything
    "postern-qfile: src/lib.rs:10",   # inside the #[cfg(test)] module
    "postern-qfile: src/golden.rs",   # the file of `#[cfg(test)] mod golden;`
    "postern-mail: src/lib.rs:8",     # comment and string mentions
    "postern-mail: src/lib.rs:9",     # std::time::Duration is pure
    "postern-mail: src/lib.rs:10",    # std::io::Result is pure; "stdin()" is a string
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
