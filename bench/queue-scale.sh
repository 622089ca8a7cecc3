#!/usr/bin/env bash
# queue-scale.sh -- issue 10's queue-scale benchmark: drain N deferred messages,
# Postern vs Debian's Postfix in the same run (bench/queue_scale.py does the work).
#
#   bench/queue-scale.sh [-n MESSAGES] [--only postfix|postern] [--timeout SECONDS]
#
#   -n        deferred messages per MTA (default 30000; try 300000 when time allows)
#   --only    run one side only
#   --timeout seconds allowed per drain (default 3600)
#   --profile strace|perf   profile Postern's qmgr during the drain into --profile-out FILE
#
# Each MTA: a private instance in a temp dir with relayhost = [127.0.0.1]:PORT
# (down), one message deferred with `defer_transports = smtp`, then that queue
# file copied N times into deferred/ (not due), defer_transports removed,
# smtp-sink started on PORT, `postqueue -f`, and the clock runs until the queue
# is empty. Output: a markdown table on stdout (paste into docs/benchmarks.md),
# progress on stderr. Run as root; builds nothing (run `cargo build --release`).
# It is a benchmark: run it when asked, never from scripts/test.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for tool in script python3 smtp-sink postfix; do
    command -v "$tool" >/dev/null || { echo "queue-scale: $tool not found" >&2; exit 2; }
done
exec python3 "$HERE/queue_scale.py" "$@"
