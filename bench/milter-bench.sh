#!/usr/bin/env bash
# milter-bench.sh -- "messages/s with one milter attached, Postern vs Postfix, same run"
# (issue 14): bench/smtpd-bench.sh's smtp-source -> smtpd -> Maildir measurement with
# `smtpd_milters` set on both MTAs to one private OpenDKIM in sign mode (every message
# is signed: smtp-source's From is bench@localhost and OpenDKIM signs for `localhost`).
#
#   bench/milter-bench.sh [--builtin] [smtpd-bench options]   default: -s 1,20 -l 1024 -m 1000
#
# --builtin (issue 15): Postfix keeps the OpenDKIM milter, Postern signs with its built-in
# cleanup signing instead (dkim_signing_table/dkim_key_table naming the same key, same
# canonicalization, no milter): "relay with signing on, Postern built-in vs Postfix +
# OpenDKIM", same run.
#
# OpenDKIM runs as a process of this script (own config, key from opendkim-genkey,
# pid file and socket on a free loopback port, in a temp dir) and is killed by PID at the
# end, whatever happens. Needs root, Debian's postfix (smtp-source), opendkim and
# opendkim-tools. Output: smtpd-bench's markdown table on stdout. It builds nothing: run
# `cargo build --release` first. MILTER_BENCH_TIMEOUT (default 1800 s) bounds the run.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for tool in opendkim opendkim-genkey python3 smtp-source; do
    command -v "$tool" >/dev/null || { echo "milter-bench: $tool not found (apt-get install opendkim opendkim-tools postfix)" >&2; exit 2; }
done
dir=$(mktemp -d /tmp/milter-bench-XXXXXX)
chmod 755 "$dir"
pid=
cleanup() {
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
opendkim-genkey -D "$dir" -d localhost -s bench
cat >"$dir/opendkim.conf" <<EOF
Syslog no
Mode s
Domain localhost
Selector bench
KeyFile $dir/bench.private
Socket inet:$port@127.0.0.1
PidFile $dir/opendkim.pid
RequireSafeKeys no
Canonicalization relaxed/simple
EOF
opendkim -f -l -x "$dir/opendkim.conf" >"$dir/opendkim.out" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$dir/opendkim.out" >&2; exit 1; }
    sleep 0.1
done
echo "milter-bench: opendkim (pid $pid) on inet:127.0.0.1:$port" >&2
builtin=0
if [[ ${1:-} == --builtin ]]; then builtin=1; shift; fi
args=("$@")
((${#args[@]})) || args=(-s 1,20 -l 1024 -m 1000)
if ((builtin)); then
    # Postern's cleanup (mail_owner or the bench account) reads the key: a private copy.
    cp "$dir/bench.private" "$dir/postern-bench.pem"
    chmod 644 "$dir/postern-bench.pem"
    mode=(--set-postfix "smtpd_milters=inet:127.0.0.1:$port"
          --set-postfix "milter_default_action=tempfail"
          --set-postern "dkim_signing_table=static:bench"
          --set-postern "dkim_key_table=inline:{ {bench=localhost:bench:$dir/postern-bench.pem} }"
          --set-postern "dkim_canonicalization=relaxed/simple")
else
    mode=(--set "smtpd_milters=inet:127.0.0.1:$port" --set "milter_default_action=tempfail")
fi
timeout --signal=TERM --kill-after=30 "${MILTER_BENCH_TIMEOUT:-1800}" \
    python3 "$HERE/smtpd_bench.py" "${mode[@]}" "${args[@]}"
