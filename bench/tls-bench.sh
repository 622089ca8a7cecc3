#!/usr/bin/env bash
# tls-bench.sh -- TLS handshakes/s and TLS message throughput (STARTTLS, then one 1 KB
# message per connection), Postern's smtpd against Debian's Postfix configured alike
# (same RSA-2048 key and certificate, smtpd_tls_security_level = may), same run (issue 6).
#
#   bench/tls-bench.sh [--clients 20] [--connections 2000] [--procs 2] [--only postfix|postern]
#                      [--binary PATH]
#
#   --clients      concurrent client connections (split over --procs processes)
#   --connections  connections per phase (handshake phase, then message phase)
#   --procs        client processes (Python asyncio + ssl), default 2
#   --binary       the postern binary (default $CARGO_TARGET_DIR/release/postern)
#
# Needs root for Postfix (its master runs as root); Postern runs as postern-test.
# Loopback only; every process started is stopped and leftovers killed by PID.
# TLS_BENCH_TIMEOUT (default 1800 s) bounds the whole run. Builds nothing.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for tool in script python3 openssl; do
    command -v "$tool" >/dev/null || { echo "tls-bench: $tool not found" >&2; exit 2; }
done
exec timeout --signal=TERM --kill-after=30 "${TLS_BENCH_TIMEOUT:-1800}" python3 "$HERE/tls_bench.py" "$@"
