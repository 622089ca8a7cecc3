#!/usr/bin/env bash
# relay-side-by-side.sh -- issue 4's relay benchmark: the same smtp-source load
# against Debian's Postfix (the "anchor", bench/anchor-postfix.sh) and Postern,
# each relaying everything to its own smtp-sink (relayhost), in one run, via
# bench/relay-bench.sh. Loopback only; run as root; builds nothing (run
# `cargo build --release` first).
#
#   bench/relay-side-by-side.sh [relay-bench options, e.g. -s 1,20,100 -l 1024,102400 --reps 3]
#
# Postern runs as a root instance in a temp dir (daemons drop to `postfix`),
# listening on $POSTERN_LISTEN and relaying to $POSTERN_RELAY.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
bin="${POSTERN_BIN:-$root/target/release/postern}"
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
export ANCHOR_LISTEN=${ANCHOR_LISTEN:-127.0.0.1:12525} ANCHOR_RELAY=${ANCHOR_RELAY:-127.0.0.1:12626}
POSTERN_LISTEN=${POSTERN_LISTEN:-127.0.0.1:13525}
POSTERN_RELAY=${POSTERN_RELAY:-127.0.0.1:13626}
work=$(mktemp -d /tmp/prb.XXXXXX)
chmod 755 "$work"
cleanup() {
    "$bin" -c "$work/inst" stop >/dev/null 2>&1 || true
    "$here/anchor-postfix.sh" stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
"$here/anchor-postfix.sh" install >/dev/null
"$here/anchor-postfix.sh" setup >/dev/null
"$here/anchor-postfix.sh" start
"$bin" init "$work/inst" --smtp-listen "$POSTERN_LISTEN" >/dev/null
"$bin" -c "$work/inst" postconf -e "relayhost = [${POSTERN_RELAY%:*}]:${POSTERN_RELAY##*:}" \
    "mynetworks = 127.0.0.0/8" "myhostname = postern.bench.invalid" "mydestination = localhost"
"$bin" -c "$work/inst" start
pid=$(tr -d ' \n' < "$work/inst/queue/pid/master.pid")
"$here/relay-bench.sh" \
    --target "postfix=$ANCHOR_LISTEN,$ANCHOR_RELAY,pidfile=/var/spool/postfix-anchor/pid/master.pid" \
    --target "postern=$POSTERN_LISTEN,$POSTERN_RELAY,pid=$pid" "$@"
