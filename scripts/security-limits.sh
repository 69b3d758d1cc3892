#!/usr/bin/env bash
# Exercises the per-session and per-message limits of pann-party (issue 12,
# "secure by default") with three real processes over TLS on loopback, and
# prints one markdown table row per role: exit status, peak resident memory
# (max RSS from /usr/bin/time) and wall time, and the role's error line.
# docs/results/security-limits.md quotes its output.
#
#   scripts/security-limits.sh > /tmp/limits.md
#
# Cases (ResNet-20 of models/assets at alpha 9, CIFAR-10 records of
# models/tests/data):
#   batch-at-cap      server --max-batch 2, client --batch 2: runs (control)
#   batch-above-cap   server --max-batch 2, client --batch 3: refused by the server
#   batch-64          server and dealer at the default limits (4096 MiB: 37 images), client
#                     --batch 64 (its own budget raised to 16 GiB): refused by the server and the dealer
#   dealer-memory     dealer --max-session-memory 300, client --batch 3: refused by the dealer
#   huge-card         the server's own card has a 2^40-pixel input: refused on load
#   huge-model        a hostile server sends a description with 2^20 x 2^20 values
#   long-frame        a hostile server sends a 256 MiB frame where the description goes
set -euo pipefail
cd "$(dirname "$0")/.."
nice -n 5 cargo build --release -q -p pann-bin --bins --example hostile_server
P=target/release/pann-party
H=target/release/examples/hostile_server
CARD=models/assets/resnet20-akamaster.card.json
DATA=models/tests/data/test_batch_first64.bin
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
target/release/pann certs --local "$W/certs" >/dev/null

port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# A card whose input is 2^40 pixels square (the weights are the shipped ones).
python3 - "$CARD" "$W/huge.card.json" <<'EOF'
import json, os, sys
card = json.load(open(sys.argv[1]))
card["architecture"]["image_size"] = 1 << 40
card["weights"] = os.path.abspath(os.path.join(os.path.dirname(sys.argv[1]), card["weights"]))
json.dump(card, open(sys.argv[2], "w"))
EOF

# timed NAME ROLE CMD...: run CMD in the background under /usr/bin/time.
timed() {
    local name=$1 role=$2
    shift 2
    /usr/bin/time -f "%M %e %x" -o "$W/$name.$role.time" "$@" >"$W/$name.$role.out" 2>"$W/$name.$role.err" &
}

row() {
    local name=$1 role=$2
    # The last line (time prefixes a "Command exited with non-zero status" line).
    read -r kb secs status < <(tail -1 "$W/$name.$role.time") || true
    local status=${status:-?}
    # The role's own error line, or its last line of output.
    local msg
    msg=$(grep -h "error:" "$W/$name.$role.err" | head -1 || true)
    [ -n "$msg" ] || msg=$(cat "$W/$name.$role.out" "$W/$name.$role.err" | grep -v '^\s*$' | grep -v 'warning:' | tail -1)
    msg=${msg//|/\\|}
    printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$role" "$status" "$(awk -v k="${kb:-0}" 'BEGIN { printf "%.1f", k / 1024 }')" "$secs" "${msg:0:400}"
}

# case NAME "DEALER ARGS" "SERVER ARGS" "CLIENT ARGS" [hostile MODE]
case3() {
    local name=$1 dargs=$2 sargs=$3 cargs=$4 hostile=${5:-}
    local dp sp
    dp=$(port)
    sp=$(port)
    local common=(--timeout 20)
    timed "$name" dealer "$P" --role dealer --listen "127.0.0.1:$dp" --sessions 1 "${common[@]}" --certs "$W/certs/dealer" $dargs
    sleep 0.3
    if [ -n "$hostile" ]; then
        timed "$name" server "$H" "$hostile" "$CARD" "$W/certs/server" "127.0.0.1:$sp" "127.0.0.1:$dp"
    else
        timed "$name" server "$P" --role server --listen "127.0.0.1:$sp" --dealer "127.0.0.1:$dp" --alpha 9 --sessions 1 "${common[@]}" --certs "$W/certs/server" $sargs
    fi
    sleep 0.3
    timed "$name" client "$P" --role client --connect "127.0.0.1:$sp" --dealer "127.0.0.1:$dp" --alpha 9 --input "$DATA" "${common[@]}" --certs "$W/certs/client" $cargs
    wait
    for r in dealer server client; do row "$name" "$r"; done
}

echo "| case | role | exit | max RSS MiB | wall s | what the role said |"
echo "|---|---|---|---|---|---|"
case3 batch-at-cap "" "--model $CARD --max-batch 2" "--count 2 --batch 2"
case3 batch-above-cap "" "--model $CARD --max-batch 2" "--count 3 --batch 3"
case3 batch-64 "" "--model $CARD" "--count 64 --batch 64 --max-session-memory 16384"
case3 dealer-memory "--max-session-memory 300" "--model $CARD" "--count 3 --batch 3"
case3 huge-card "" "--model $W/huge.card.json" "--count 1 --batch 1"
case3 huge-model "" "" "--count 1 --batch 1" huge-model
case3 long-frame "" "" "--count 1 --batch 1" long-frame
