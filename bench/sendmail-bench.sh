#!/usr/bin/env bash
# sendmail-bench.sh -- "10,000 messages through sendmail into Maildir, messages/s",
# for Postern and for Debian's Postfix, on the same machine in the same run.
#
#   bench/sendmail-bench.sh [-n MESSAGES] [-k SUBMITTERS] [--size BYTES]
#                           [--only postfix|postern] [--timeout SECONDS] [--keep]
#
#   -n        messages per MTA (default 10000)
#   -k        parallel submitters, each running the MTA's sendmail once per message (default 4)
#   --size    message size in bytes (default 1024)
#   --only    run one side only
#   --timeout seconds allowed per MTA, submission + delivery (default 900)
#   --keep    keep the temp dirs (instances, Maildirs, maillogs) for inspection
#
# Each MTA runs as a private instance in a temp dir (no /etc/postfix, no port 25, no
# inet listener for Postfix); time runs from the first submission until the last
# message is in the recipient's Maildir new/. Output: a markdown table fragment on
# stdout (paste into docs/benchmarks.md), progress on stderr. Needs root (Postfix's
# master runs as root; the recipient is the postern-test account, created if missing).
# Every process started is stopped, and leftovers killed, by PID.
#
# It is a benchmark: run it when asked, never from scripts/test. It builds nothing:
# run `cargo build --release` first (CARGO_TARGET_DIR is honoured).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [[ $(id -u) -ne 0 ]]; then
    echo "sendmail-bench: run as root (a private Postfix instance needs it); use --only postern otherwise" >&2
fi
for tool in script python3; do
    command -v "$tool" >/dev/null || { echo "sendmail-bench: $tool not found" >&2; exit 2; }
done
exec python3 "$HERE/sendmail_bench.py" "$@"
