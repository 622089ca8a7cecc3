#!/usr/bin/env bash
# smtpd-bench.sh -- "Postfix's smtp-source against Postern and against Debian's Postfix,
# configured alike, in the same run: 1, 20 and 100 sessions; 1 KB and 100 KB messages;
# accepted messages/s, delivered-to-Maildir messages/s, CPU seconds per message, peak
# memory; results as ratios" (issue 3).
#
#   bench/smtpd-bench.sh [--quick] [-s 1,20,100] [-l 1024,102400] [-m 2000] [-M 300]
#                        [--reps N] [--reuse] [--only postfix|postern] [--max-secs 300]
#                        [--idle-wait 20] [--postfix-listen 127.0.0.1:PORT]
#                        [--postern-listen 127.0.0.1:PORT] [--keep]
#
#   --quick    1 and 20 sessions, 300 x 1 KB and 60 x 100 KB: a first try (~1-2 minutes)
#   -s         session counts (smtp-source -s), default 1,20,100
#   -l         message sizes in bytes (smtp-source -l), default 1024,102400
#   -m         messages per run for sizes below 10,000 bytes (default 2000)
#   -M         messages per run for sizes of 10,000 bytes and more (default 300)
#   --reps     repeat the matrix N times (interleaved); the table shows medians
#   --reuse    pass -d to smtp-source (many messages per connection); default: one
#              connection per message, as smtp-source does by default
#   --only     run one MTA only
#   --max-secs bound of each phase (load, delivery), default 300
#   --idle-wait wait up to N s before each run for the machine to be < 30% busy
#   --keep     keep the temp dirs (instances, Maildirs, maillogs)
#
# For every (sessions, size) point each MTA gets a fresh private instance in a temp dir,
# listening on its own loopback port, started inside its own cgroup (v1 cpuacct+memory,
# when available; else the process tree is summed); a warm-up of SESSIONS messages, then
#   smtp-source -c -s SESSIONS -m MESSAGES -l SIZE -f bench@localhost \
#               -t postern-test@localhost 127.0.0.1:PORT
# and a wait until MESSAGES new files are in postern-test's Maildir new/. The two MTAs
# run back to back per point, alternating which goes first.
#
# Output: markdown table fragments on stdout (paste into docs/benchmarks.md), progress
# and per-run details on stderr. Needs root (Postfix's master runs as root; Postern runs
# as the postern-test account, which is created if missing, like the integration tests).
# Loopback (127.x) only; every phase time-bounded; every process started is stopped and
# leftovers killed by PID. It builds nothing: run `cargo build --release` first; the
# binary is copied once at the start (its sha256 goes into the output), so every run of
# the matrix uses the same build even if someone rebuilds target/release meanwhile.
# SMTPD_BENCH_TIMEOUT (default 3600 s) bounds the whole run.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [[ $(id -u) -ne 0 ]]; then
    echo "smtpd-bench: run as root (a private Postfix instance needs it); use --only postern otherwise" >&2
fi
for tool in script python3 smtp-source; do
    command -v "$tool" >/dev/null || { echo "smtpd-bench: $tool not found (apt-get install postfix)" >&2; exit 2; }
done
# A hard bound on the whole run, whatever happens inside.
exec timeout --signal=TERM --kill-after=30 "${SMTPD_BENCH_TIMEOUT:-3600}" python3 "$HERE/smtpd_bench.py" "$@"
