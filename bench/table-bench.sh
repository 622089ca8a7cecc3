#!/usr/bin/env bash
# table-bench.sh -- lookups per second through `postmap -q - < keys`, Postern vs Debian's
# Postfix, same machine, same run, same keys.
#
#   bench/table-bench.sh [-n KEYS] [--keep]
#
#   -n      entries in the hash and cdb tables, and lookups against them (default 1000000)
#   --keep  keep the temp dir
#
# Tables:
#   hash, cdb  N entries `userI@domainJ.example valueI`; N lookups (every key, shuffled,
#              every tenth one upper-cased, plus 10% keys that are not there).
#   regexp     1,000 rules (a regexp table is a linear scan per lookup, so 1,000,000 rules
#              would measure nothing useful); 100,000 lookups.
#   cidr       10,000 rules; 100,000 lookups of addresses, mostly inside the rules.
# Each side builds its own table from the same source (Debian's hash is Berkeley DB,
# Postern's is its own cdb-based format) and queries it with its own postmap. The build
# time is reported too. Output: a markdown table on stdout, progress on stderr.
#
# It is a benchmark: run it by hand, never from scripts/test. It builds nothing: run
# `cargo build --release -p postern` first (CARGO_TARGET_DIR is honoured).
set -euo pipefail

N=1000000
KEEP=0
while (($#)); do
    case $1 in
        -n) N=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        *) echo "usage: $0 [-n KEYS] [--keep]" >&2; exit 2 ;;
    esac
done

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TARGET=${CARGO_TARGET_DIR:-$HERE/../target}
POSTERN=$TARGET/release/postern
DEB=/usr/sbin/postmap
[[ -x $POSTERN ]] || { echo "table-bench: no $POSTERN (cargo build --release -p postern)" >&2; exit 2; }
[[ -x $DEB ]] || { echo "table-bench: no $DEB (apt-get install postfix postfix-cdb)" >&2; exit 2; }

W=$(mktemp -d /tmp/table-bench.XXXXXX)
((KEEP)) || trap 'rm -rf "$W"' EXIT
touch "$W/main.cf"
mkdir -p "$W/pf" "$W/pt"
export MAIL_CONFIG=$W LC_ALL=C

echo "table-bench: generating data in $W" >&2
python3 - "$W" "$N" <<'EOF'
import random, sys
w, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(1)
with open(f"{w}/src", "w") as f:
    for i in range(n):
        f.write(f"user{i}@domain{i % 1000}.example value{i}\n")
keys = [f"user{i}@domain{i % 1000}.example" for i in range(n)]
keys = [k.upper() if i % 10 == 0 else k for i, k in enumerate(keys)]
keys += [f"nobody{i}@nowhere.example" for i in range(n // 10)]
rnd.shuffle(keys)
open(f"{w}/keys", "w").write("\n".join(keys) + "\n")
with open(f"{w}/regexp", "w") as f:
    for i in range(1000):
        f.write(f"/^user{i}[0-9]*@domain{i % 7}\\.example$/ rule{i}\n")
rk = [f"user{rnd.randrange(2000)}{rnd.randrange(100)}@domain{rnd.randrange(8)}.example" for _ in range(100000)]
open(f"{w}/regexp-keys", "w").write("\n".join(rk) + "\n")
with open(f"{w}/cidr", "w") as f:
    for i in range(10000):
        f.write(f"10.{i // 256 % 256}.{i % 256}.0/24 net{i}\n")
ck = [f"10.{rnd.randrange(48)}.{rnd.randrange(256)}.{rnd.randrange(256)}" for _ in range(100000)]
open(f"{w}/cidr-keys", "w").write("\n".join(ck) + "\n")
EOF
cp "$W/src" "$W/pf/src"
cp "$W/src" "$W/pt/src"

now() { date +%s.%N; }
# secs CMD...: wall time of CMD (stdout discarded)
secs() { local t0 t1; t0=$(now); "$@" >/dev/null; t1=$(now); python3 -c "print(f'{$t1-$t0:.2f}')"; }
rate() { python3 -c "print(f'{$1/$2:,.0f}')"; }
count() { wc -l <"$1" | tr -d ' '; }

declare -A BUILD LOOK
for kind in hash cdb; do
    echo "table-bench: $kind build" >&2
    BUILD[pf-$kind]=$(secs "$DEB" "$kind:$W/pf/src")
    BUILD[pt-$kind]=$(secs "$POSTERN" postmap "$kind:$W/pt/src")
    echo "table-bench: $kind lookups" >&2
    LOOK[pf-$kind]=$(secs sh -c "\"$DEB\" -q - \"$kind:$W/pf/src\" < \"$W/keys\"")
    LOOK[pt-$kind]=$(secs sh -c "\"$POSTERN\" postmap -q - \"$kind:$W/pt/src\" < \"$W/keys\"")
done
for kind in regexp cidr; do
    echo "table-bench: $kind lookups" >&2
    LOOK[pf-$kind]=$(secs sh -c "\"$DEB\" -q - \"$kind:$W/$kind\" < \"$W/$kind-keys\"")
    LOOK[pt-$kind]=$(secs sh -c "\"$POSTERN\" postmap -q - \"$kind:$W/$kind\" < \"$W/$kind-keys\"")
done
# Same answers? (a benchmark of wrong answers measures nothing)
for kind in hash cdb; do
    a=$("$DEB" -q - "$kind:$W/pf/src" <"$W/keys" | sort | md5sum)
    b=$("$POSTERN" postmap -q - "$kind:$W/pt/src" <"$W/keys" | sort | md5sum)
    [[ $a == "$b" ]] || { echo "table-bench: $kind answers differ" >&2; exit 1; }
done

K=$(count "$W/keys")
echo "| table | entries | lookups | Postfix build s | Postern build s | Postfix lookups/s | Postern lookups/s | ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for kind in hash cdb; do
    pf=$(rate "$K" "${LOOK[pf-$kind]}"); pt=$(rate "$K" "${LOOK[pt-$kind]}")
    ratio=$(python3 -c "print(f'{${LOOK[pf-$kind]}/${LOOK[pt-$kind]}:.2f}')")
    echo "| $kind | $N | $K | ${BUILD[pf-$kind]} | ${BUILD[pt-$kind]} | $pf | $pt | ${ratio}x |"
done
for kind in regexp cidr; do
    rules=$(count "$W/$kind"); k=$(count "$W/$kind-keys")
    pf=$(rate "$k" "${LOOK[pf-$kind]}"); pt=$(rate "$k" "${LOOK[pt-$kind]}")
    ratio=$(python3 -c "print(f'{${LOOK[pf-$kind]}/${LOOK[pt-$kind]}:.2f}')")
    echo "| $kind | $rules rules | $k | - | - | $pf | $pt | ${ratio}x |"
done
