#!/usr/bin/env bash
# Measures pann-party's server and dealer as long-running services (issue
# 13, docs/results/serving.md) with real processes over pinned TLS on
# loopback: ResNet-20 of models/assets at alpha 9, CIFAR-10 records of
# models/tests/data/test_batch_first64.bin. Every prediction is checked
# against the in-process fixed-point reference (computed once per run by
# `target/release/examples/load --reference-only`).
#
#   scripts/serving.sh                      all four parts
#   scripts/serving.sh load seq memory haproxy
#   REQUESTS=4 SEQ=20 BATCHES="1 8" OUT=/tmp/r scripts/serving.sh    a quick check
#
# Parts:
#   load     a dealer and a server (--max-sessions 8 --queue 16, --metrics);
#            the load generator (bin/examples/load.rs) at concurrency LEVELS
#            with REQUESTS requests per level of IMAGES image(s) each:
#            throughput, median and 95th percentile latency, failures, wrong
#            predictions. Writes OUT/serving-load.md and OUT/serving-load.json.
#   seq      SEQ sequential single-image inferences on one server process
#            (fresh dealer and server, as above); VmRSS and VmHWM of the
#            server and the dealer (/proc/PID/status) after the first 10 and
#            every SEQ_EVERY after that, and at the end. Writes
#            OUT/serving-sequential.md.
#   memory   one-shot runs (server and dealer --sessions 1; client --count B
#            --batch B) at each batch B of BATCHES, every role under
#            /usr/bin/time -v (maximum resident set size) and
#            --max-session-memory 16777216 (no limit refuses batch 64); the
#            client's wall time. Writes OUT/serving-memory.md.
#   haproxy  two server processes behind HAProxy (TCP mode, round robin,
#            installed with apt-get if missing; skipped with a message if it
#            cannot be) and one shared dealer; HAPROXY_CLIENTS concurrent
#            clients, HAPROXY_REQUESTS requests in all, through the front
#            port; each server's --report line count. Writes
#            OUT/serving-haproxy.md.
#
# Environment (defaults): REQUESTS (16), LEVELS (1,2,4,8), IMAGES (1), SEQ
# (1000), SEQ_EVERY (250), BATCHES ("1 8 64"), HAPROXY_CLIENTS (8),
# HAPROXY_REQUESTS (16), OUT (docs/results), TIMEOUT (the parties'
# --timeout, 120), MEM_TIMEOUT (the parties' --timeout in part memory, 600),
# DEALER_MAX_SESSIONS (16: two servers of 8), DEALER_ARGS and SERVER_ARGS
# (extra flags for the services of parts load, seq and haproxy, e.g.
# DEALER_ARGS="--pool 2"), LOAD_ARGS (extra flags for the load generator in
# part load, e.g. LOAD_ARGS="--pause-ms 1500"), KEEP (set: keep the work
# directory with every log), NO_BUILD (set: use the binaries already in
# target/release).
#
# Everything listens on 127.0.0.1 only; every wait is bounded; every process
# started here runs in its own process group and is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/serving-common.sh
. scripts/serving-common.sh

PARTS=("$@")
[ ${#PARTS[@]} -gt 0 ] || PARTS=(load seq memory haproxy)
for p in "${PARTS[@]}"; do
    case $p in
    load | seq | memory | haproxy) ;;
    *)
        echo "usage: scripts/serving.sh [load] [seq] [memory] [haproxy]   (default: all)" >&2
        exit 2
        ;;
    esac
done

REQUESTS=${REQUESTS:-16}
LEVELS=${LEVELS:-1,2,4,8}
IMAGES=${IMAGES:-1}
SEQ=${SEQ:-1000}
SEQ_EVERY=${SEQ_EVERY:-250}
BATCHES=${BATCHES:-1 8 64}
HAPROXY_CLIENTS=${HAPROXY_CLIENTS:-8}
HAPROXY_REQUESTS=${HAPROXY_REQUESTS:-16}
OUT=${OUT:-docs/results}
TIMEOUT=${TIMEOUT:-120}
MEM_TIMEOUT=${MEM_TIMEOUT:-600}
DEALER_MAX_SESSIONS=${DEALER_MAX_SESSIONS:-16}
DEALER_ARGS=${DEALER_ARGS:-}
SERVER_ARGS=${SERVER_ARGS:-}
LOAD_ARGS=${LOAD_ARGS:-}
[ "$SEQ" -gt 10 ] || { echo "serving.sh: SEQ must exceed 10 (memory is read after the first 10)" >&2; exit 2; }

INVOCATION="REQUESTS=$REQUESTS LEVELS=$LEVELS IMAGES=$IMAGES SEQ=$SEQ SEQ_EVERY=$SEQ_EVERY BATCHES=\"$BATCHES\" HAPROXY_CLIENTS=$HAPROXY_CLIENTS HAPROXY_REQUESTS=$HAPROXY_REQUESTS TIMEOUT=$TIMEOUT MEM_TIMEOUT=$MEM_TIMEOUT DEALER_MAX_SESSIONS=$DEALER_MAX_SESSIONS DEALER_ARGS=\"$DEALER_ARGS\" SERVER_ARGS=\"$SERVER_ARGS\" LOAD_ARGS=\"$LOAD_ARGS\" scripts/serving.sh ${PARTS[*]}"

prepare serving.sh pann-serving

# Background processes: name -> pid (each the leader of its own process group).
declare -A PID=()
cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    if [ -n "$FG" ]; then kill -TERM -- "-$FG" 2>/dev/null || kill -TERM "$FG" 2>/dev/null || true; fi
    for pid in "${PID[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    for i in $(seq 50); do
        local left=0
        for pid in "${PID[@]}"; do running "$pid" && left=1; done
        [ $left = 0 ] && break
        sleep 0.1
    done
    for pid in "${PID[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
    if [ -n "${KEEP:-}" ]; then echo "serving.sh: logs kept in $W" >&2; else rm -rf "$W"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The foreground command of fgwait (serving-common.sh), ended by cleanup.
FG=""

# stop NAME [SECONDS]: SIGTERM, wait (bounded) for the exit, then SIGKILL;
# sets ST to the exit status (or "killed"). Not in $(...): the process must
# be this shell's child.
stop() {
    [ -n "${PID[$1]:-}" ] || { ST="-"; return 0; }
    kill -TERM -- "-${PID[$1]}" 2>/dev/null || true
    wait_exit "$1" "${2:-60}"
    [ "$ST" != timeout ] || ST=killed
}

# wait_exit NAME SECONDS: wait for a process to end by itself; kill it after
# SECONDS. Sets ST to its exit status, or "timeout".
wait_exit() {
    local name=$1 secs=$2 pid=${PID[$1]} i
    for ((i = 0; i < secs * 10; i++)); do
        running "$pid" || break
        sleep 0.1
    done
    if running "$pid"; then
        kill -KILL -- "-$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        ST=timeout
    else
        ST=0
        wait "$pid" 2>/dev/null || ST=$?
    fi
    unset "PID[$name]"
}

# wait_for NAME TEXT SECONDS: until TEXT appears in NAME's stderr.
wait_for() {
    local name=$1 text=$2 secs=$3 i
    for ((i = 0; i < secs * 10; i++)); do
        grep -q "$text" "$W/$name.err" 2>/dev/null && return 0
        running "${PID[$name]}" || break
        sleep 0.1
    done
    echo "serving.sh: the $name did not print \"$text\" within $secs s; its stderr:" >&2
    tail -n 20 "$W/$name.err" >&2
    exit 1
}

# scrape ADDR: the metrics page.
scrape() {
    python3 -c 'import sys, urllib.request; print(urllib.request.urlopen("http://" + sys.argv[1] + "/metrics", timeout=5).read().decode())' "$1"
}

machine() {
    local cpu
    cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    echo "- Machine: $(nproc) core(s) ($cpu), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) of memory, $(uname -sr)"
    echo "- Commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "- Date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "- Script: \`$INVOCATION\`"
}

# The fixed-point reference of every record, once.
echo "serving.sh: the fixed-point reference of every record of $DATA" >&2
fgwait timeout 600 "$LOAD" --reference-only --alpha 9 --card "$CARD" --input "$DATA" >"$W/reference.json" 2>"$W/reference.err" || {
    cat "$W/reference.err" >&2
    exit 1
}
DIGEST=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["model_digest"])' "$W/reference.json")
target/release/pann certs --local "$W/certs" >/dev/null

# services PREFIX: a dealer and a server as services; sets SP (server port),
# DP (dealer port), MP (server metrics port), DMP (dealer metrics port).
services() {
    local prefix=$1
    read -r SP DP MP DMP < <(ports 4)
    start "$prefix-dealer" "$P" --role dealer --listen "127.0.0.1:$DP" --timeout "$TIMEOUT" --max-sessions "$DEALER_MAX_SESSIONS" \
        --metrics "127.0.0.1:$DMP" --report "$W/$prefix-dealer.jsonl" --certs "$W/certs/dealer" $DEALER_ARGS
    wait_for "$prefix-dealer" "listening on" 60
    start "$prefix-server" "$P" --role server --listen "127.0.0.1:$SP" --dealer "127.0.0.1:$DP" --alpha 9 --model "$CARD" \
        --max-sessions 8 --queue 16 --timeout "$TIMEOUT" --metrics "127.0.0.1:$MP" --report "$W/$prefix-server.jsonl" --certs "$W/certs/server" $SERVER_ARGS
    wait_for "$prefix-server" "listening on" 120
}

# A bound on a load generator run of N requests: 5 minutes plus 2 minutes a request.
bound() { echo $((300 + 120 * $1)); }

levels_count() { tr ',' '\n' <<<"$LEVELS" | grep -c .; }

part_load() {
    echo "serving.sh: load: concurrency $LEVELS, $REQUESTS request(s) of $IMAGES image(s) per level" >&2
    services load
    local cmd=("$LOAD" --server "127.0.0.1:$SP" --dealer "127.0.0.1:$DP" --certs "$W/certs/client" --alpha 9 --input "$DATA"
        --concurrency "$LEVELS" --requests "$REQUESTS" --images-per-request "$IMAGES" --reference "$W/reference.json" --json "$OUT/serving-load.json" $LOAD_ARGS)
    local rc=0 t0=$SECONDS
    fgwait timeout "$(bound $((REQUESTS * $(levels_count))))" "${cmd[@]}" >"$W/load.table" 2>"$W/load.log" || rc=$?
    local page
    page=$(scrape "127.0.0.1:$MP" || true)
    local srss shwm drss dhwm
    srss=$(mem "${PID[load-server]}" VmRSS) shwm=$(mem "${PID[load-server]}" VmHWM)
    drss=$(mem "${PID[load-dealer]}" VmRSS) dhwm=$(mem "${PID[load-dealer]}" VmHWM)
    local s_exit d_exit
    stop load-server
    s_exit=$ST
    stop load-dealer
    d_exit=$ST
    {
        echo "# Serving: throughput and latency under concurrent clients"
        echo
        machine
        echo "- Model: ResNet-20 ($CARD, digest $DIGEST) at alpha 9; inputs: records of $DATA, rotating"
        echo "- Server: \`pann-party --role server --max-sessions 8 --queue 16 --timeout $TIMEOUT --metrics ... $SERVER_ARGS\`; dealer: \`--max-sessions $DEALER_MAX_SESSIONS --timeout $TIMEOUT $DEALER_ARGS\`; both on 127.0.0.1, pinned TLS"
        echo "- Load generator: \`${cmd[*]}\` (exit status $rc, $((SECONDS - t0)) s); ports and the temporary directory change from run to run"
        echo "- Latency: one request = one session (connect, TLS, model description, dealer, online phase) of $IMAGES image(s), until the client has the logits; median and nearest-rank 95th percentile over the successful requests. Throughput: successfully inferred images / wall time of the level. Wrong predictions: classes that differ from the in-process fixed-point reference's. Every latency is in serving-load.json."
        echo
        cat "$W/load.table"
        echo
        echo "Server counters after the run (its /metrics): completed $(metric "$page" pann_sessions_completed_total), failed $(metric "$page" pann_sessions_failed_total), busy $(metric "$page" pann_sessions_busy_total), in flight $(metric "$page" pann_sessions_in_flight); --report lines: server $(wc -l <"$W/load-server.jsonl" 2>/dev/null || echo 0), dealer $(wc -l <"$W/load-dealer.jsonl" 2>/dev/null || echo 0)."
        echo
        echo "Memory after the run: server VmRSS $srss MiB (VmHWM $shwm MiB), dealer VmRSS $drss MiB (VmHWM $dhwm MiB). Exit status on SIGTERM: server $s_exit, dealer $d_exit."
        if grep -q "failed after" "$W/load.log"; then
            echo
            echo "Failed requests (load generator's stderr):"
            echo
            grep "failed after" "$W/load.log" | head -20 | sed 's/^/    /'
        fi
    } >"$OUT/serving-load.md"
    cat "$W/load.table"
    echo "serving.sh: load: wrote $OUT/serving-load.md and $OUT/serving-load.json (load generator exit $rc)" >&2
}

part_seq() {
    echo "serving.sh: seq: $SEQ sequential inferences on one server process" >&2
    services seq
    local rows=() done=0 n rc fails=0 wrong=0 t0=$SECONDS
    local cmd0=("$LOAD" --server "127.0.0.1:$SP" --dealer "127.0.0.1:$DP" --certs "$W/certs/client" --alpha 9 --input "$DATA" --concurrency 1 --images-per-request 1 --reference "$W/reference.json")
    while [ $done -lt "$SEQ" ]; do
        if [ $done = 0 ]; then n=10; else n=$((SEQ - done < SEQ_EVERY ? SEQ - done : SEQ_EVERY)); fi
        rc=0
        fgwait timeout "$(bound "$n")" "${cmd0[@]}" --requests "$n" --json "$W/seq-$done.json" >"$W/seq-$done.table" 2>"$W/seq-$done.log" || rc=$?
        local f w
        read -r f w < <(python3 -c 'import json, sys
try:
    l = json.load(open(sys.argv[1]))["levels"][0]; print(l["failed"], l["wrong_predictions"])
except Exception:
    print(sys.argv[2], "?")' "$W/seq-$done.json" "$n")
        fails=$((fails + f))
        [ "$w" = "?" ] || wrong=$((wrong + w))
        done=$((done + n))
        local sp=${PID[seq-server]} dp=${PID[seq-dealer]}
        running "$sp" || { echo "serving.sh: seq: the server died; its stderr:" >&2; tail -n 20 "$W/seq-server.err" >&2; exit 1; }
        rows+=("| $done | $(mem "$sp" VmRSS) | $(mem "$sp" VmHWM) | $(mem "$dp" VmRSS) | $(mem "$dp" VmHWM) | $fails | $wrong |")
        echo "serving.sh: seq: ${rows[-1]} (load generator exit $rc)" >&2
    done
    local wall=$((SECONDS - t0))
    local page
    page=$(scrape "127.0.0.1:$MP" || true)
    local s_exit d_exit
    stop seq-server
    s_exit=$ST
    stop seq-dealer
    d_exit=$ST
    {
        echo "# Serving: memory over sequential inferences on one server process"
        echo
        machine
        echo "- Model: ResNet-20 ($CARD, digest $DIGEST) at alpha 9; one image per session, records of $DATA in turn"
        echo "- Server: \`pann-party --role server --max-sessions 8 --queue 16 --timeout $TIMEOUT $SERVER_ARGS\`; dealer \`--max-sessions $DEALER_MAX_SESSIONS $DEALER_ARGS\`; one process each for all $SEQ sessions"
        echo "- Clients: \`${cmd0[*]} --requests N\` (in-process, one session at a time), N = 10, then $SEQ_EVERY at a time; memory from /proc/PID/status after each"
        echo "- $SEQ sessions in $wall s ($(awk -v s="$wall" -v n="$SEQ" 'BEGIN { printf "%.2f", s / n }') s per session, including the load generator's start)"
        echo
        echo "| inferences done | server VmRSS MiB | server VmHWM MiB | dealer VmRSS MiB | dealer VmHWM MiB | failed so far | wrong predictions so far |"
        echo "|---|---|---|---|---|---|---|"
        printf '%s\n' "${rows[@]}"
        echo
        echo "Server counters at the end (its /metrics): completed $(metric "$page" pann_sessions_completed_total), failed $(metric "$page" pann_sessions_failed_total), in flight $(metric "$page" pann_sessions_in_flight); --report lines: server $(wc -l <"$W/seq-server.jsonl" 2>/dev/null || echo 0), dealer $(wc -l <"$W/seq-dealer.jsonl" 2>/dev/null || echo 0). Exit status on SIGTERM: server $s_exit, dealer $d_exit."
    } >"$OUT/serving-sequential.md"
    printf '%s\n' "${rows[@]}"
    echo "serving.sh: seq: wrote $OUT/serving-sequential.md" >&2
}

# time_field FILE: "max RSS MiB|wall s|exit" from a /usr/bin/time -v file.
time_field() {
    awk -F': ' '
        /Maximum resident set size/ { kb = $2 }
        /Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; wall = s }
        /Exit status/ { ex = $2 }
        /Command terminated by signal/ { sig = $0; sub(/.*signal /, "", sig); ex = "signal " sig }
        END { printf "%.1f|%.2f|%s\n", kb / 1024, wall, ex }' "$1"
}

part_memory() {
    echo "serving.sh: memory: one-shot runs at batch $BATCHES" >&2
    local rows=() b deadline
    local lim=(--max-session-memory 16777216 --timeout "$MEM_TIMEOUT")
    for b in $BATCHES; do
        deadline=$((MEM_TIMEOUT * 3))
        read -r SP DP < <(ports 2)
        local pre="mem$b"
        start "$pre-dealer" /usr/bin/time -v -o "$W/$pre-dealer.time" "$P" --role dealer --listen "127.0.0.1:$DP" --sessions 1 "${lim[@]}" --certs "$W/certs/dealer"
        wait_for "$pre-dealer" "listening on" 60
        start "$pre-server" /usr/bin/time -v -o "$W/$pre-server.time" "$P" --role server --listen "127.0.0.1:$SP" --dealer "127.0.0.1:$DP" --alpha 9 --model "$CARD" \
            --sessions 1 "${lim[@]}" --certs "$W/certs/server"
        wait_for "$pre-server" "listening on" 120
        start "$pre-client" /usr/bin/time -v -o "$W/$pre-client.time" "$P" --role client --connect "127.0.0.1:$SP" --dealer "127.0.0.1:$DP" --alpha 9 \
            --expect-model "$DIGEST" --input "$DATA" --count "$b" --batch "$b" "${lim[@]}" --report "$W/$pre-client.json" --certs "$W/certs/client"
        local c_rc s_rc d_rc
        wait_exit "$pre-client" "$deadline"
        c_rc=$ST
        wait_exit "$pre-server" 60
        s_rc=$ST
        wait_exit "$pre-dealer" 60
        d_rc=$ST
        local check
        check=$(python3 -c '
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except Exception:
    print("no report|-|-"); sys.exit()
ref = json.load(open(sys.argv[2]))["classes"]
p = r["predictions"]
wrong = sum(1 for i, x in enumerate(p) if x.get("class") != ref[i])
on = sum(b["online_s"] for b in r["batches"]); off = sum(b["offline_s"] for b in r["batches"])
print(f"{len(p)} image(s), {wrong} wrong|{on:.2f}|{off:.2f}")' "$W/$pre-client.json" "$W/reference.json")
        local role f
        for role in server client dealer; do
            f=$(time_field "$W/$pre-$role.time" 2>/dev/null || echo "?|?|?")
            local rc_var="${role:0:1}_rc"
            IFS='|' read -r kb wall ex <<<"$f"
            local extra="| | | |"
            [ "$role" = client ] && extra="| $(sed 's/|/ | /g' <<<"$check") |"
            rows+=("| $b | $role | ${!rc_var} | $kb | $wall $extra")
        done
        echo "serving.sh: memory: batch $b: client $c_rc, server $s_rc, dealer $d_rc" >&2
        for role in server client dealer; do
            grep -h "error:" "$W/$pre-$role.err" | head -2 | sed "s/^/serving.sh: memory: batch $b $role: /" >&2 || true
        done
    done
    {
        echo "# Serving: peak memory per party by batch size"
        echo
        machine
        echo "- Model: ResNet-20 ($CARD, digest $DIGEST) at alpha 9; records 0..B-1 of $DATA"
        echo "- One-shot runs: \`pann-party --role dealer --sessions 1\`, \`--role server --sessions 1\`, \`--role client --count B --batch B\`, each with \`--max-session-memory 16777216 --timeout $MEM_TIMEOUT\`, each under \`/usr/bin/time -v\` (maximum resident set size; wall time from the process's start, so the server's and the dealer's include waiting for the client)"
        echo "- Client online / offline: the sums over its batches in its --report (offline = waiting for the dealer's material during the online phase); predictions checked against the in-process fixed-point reference"
        echo
        echo "| batch | role | exit | max RSS MiB | wall s | client predictions | online s | offline s |"
        echo "|---|---|---|---|---|---|---|---|"
        printf '%s\n' "${rows[@]}"
    } >"$OUT/serving-memory.md"
    printf '%s\n' "${rows[@]}"
    echo "serving.sh: memory: wrote $OUT/serving-memory.md" >&2
}

# hastat: "s1=N s2=M", the connections HAProxy passed to each server
# (stot), from its stats socket.
hastat() {
    python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(b"show stat\n")
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
lines = data.decode().splitlines()
head = lines[0].lstrip("# ").split(",")
out = []
for l in lines[1:]:
    v = dict(zip(head, l.split(",")))
    if v.get("svname") in ("s1", "s2"):
        out.append("%s=%s" % (v["svname"], v["stot"]))
if not out:
    sys.exit(1)
print(" ".join(out))' "$W/haproxy.sock"
}

part_haproxy() {
    if ! command -v haproxy >/dev/null; then
        echo "serving.sh: haproxy: not installed; trying apt-get install haproxy" >&2
        if ! { DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q haproxy >"$W/apt.log" 2>&1 ||
            { timeout 300 apt-get update -q >>"$W/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q haproxy >>"$W/apt.log" 2>&1; }; }; then
            tail -n 5 "$W/apt.log" >&2
        fi
    fi
    if ! command -v haproxy >/dev/null; then
        echo "serving.sh: haproxy: SKIPPED: HAProxy is not installed and apt-get could not install it (Debian package haproxy); $OUT/serving-haproxy.md not written" >&2
        return 0
    fi
    echo "serving.sh: haproxy: two servers behind $(haproxy -v | head -1), $HAPROXY_CLIENTS clients" >&2
    local S1 S2 FP
    read -r S1 S2 DP FP < <(ports 4)
    start ha-dealer "$P" --role dealer --listen "127.0.0.1:$DP" --timeout "$TIMEOUT" --max-sessions "$DEALER_MAX_SESSIONS" --report "$W/ha-dealer.jsonl" --certs "$W/certs/dealer" $DEALER_ARGS
    wait_for ha-dealer "listening on" 60
    local i
    for i in 1 2; do
        local port_var="S$i"
        start "ha-server$i" "$P" --role server --listen "127.0.0.1:${!port_var}" --dealer "127.0.0.1:$DP" --alpha 9 --model "$CARD" \
            --max-sessions 8 --queue 16 --timeout "$TIMEOUT" --report "$W/ha-server$i.jsonl" --certs "$W/certs/server" $SERVER_ARGS
    done
    wait_for ha-server1 "listening on" 120
    wait_for ha-server2 "listening on" 120
    cat >"$W/haproxy.cfg" <<EOF
global
    maxconn 1024
    stats socket $W/haproxy.sock mode 600 level user

defaults
    mode tcp
    timeout connect 5s
    timeout client ${TIMEOUT}s
    timeout server ${TIMEOUT}s

frontend pann
    bind 127.0.0.1:$FP
    default_backend servers

backend servers
    balance roundrobin
    server s1 127.0.0.1:$S1
    server s2 127.0.0.1:$S2
EOF
    haproxy -c -q -f "$W/haproxy.cfg" >"$W/haproxy-check.log" 2>&1 || { cat "$W/haproxy-check.log" >&2; exit 1; }
    start haproxy haproxy -db -f "$W/haproxy.cfg"
    # Ready when its stats socket answers (no probe of the front port: it
    # would reach a server as a connection without TLS).
    local k
    for k in $(seq 100); do
        hastat >/dev/null 2>&1 && break
        running "${PID[haproxy]}" || { cat "$W/haproxy.err" >&2; exit 1; }
        sleep 0.1
    done
    local cmd=("$LOAD" --server "127.0.0.1:$FP" --dealer "127.0.0.1:$DP" --certs "$W/certs/client" --alpha 9 --input "$DATA"
        --concurrency "$HAPROXY_CLIENTS" --requests "$HAPROXY_REQUESTS" --images-per-request 1 --reference "$W/reference.json")
    local rc=0
    fgwait timeout "$(bound "$HAPROXY_REQUESTS")" "${cmd[@]}" >"$W/ha.table" 2>"$W/ha.log" || rc=$?
    local stat
    stat=$(hastat 2>/dev/null || echo "unavailable")
    local n1 n2 ok1 ok2
    n1=$(wc -l <"$W/ha-server1.jsonl" 2>/dev/null || echo 0)
    n2=$(wc -l <"$W/ha-server2.jsonl" 2>/dev/null || echo 0)
    ok1=$(grep -c '"ok":true' "$W/ha-server1.jsonl" 2>/dev/null || true)
    ok2=$(grep -c '"ok":true' "$W/ha-server2.jsonl" 2>/dev/null || true)
    local e1 e2 ed eh
    stop ha-server1
    e1=$ST
    stop ha-server2
    e2=$ST
    stop ha-dealer
    ed=$ST
    stop haproxy 10
    eh=$ST
    {
        echo "# Serving: two servers behind HAProxy, one shared dealer"
        echo
        machine
        echo "- $(haproxy -v | head -1)"
        echo "- Model: ResNet-20 ($CARD, digest $DIGEST) at alpha 9; both servers serve the same card with the same server identity; one dealer (\`--max-sessions $DEALER_MAX_SESSIONS $DEALER_ARGS\`)"
        echo "- HAProxy in TCP mode (TLS passes through end to end), round robin, no health checks; its configuration:"
        echo
        sed -e "s|$W|\$TMP|g" -e 's/^/    /' "$W/haproxy.cfg"
        echo
        echo "- Clients: \`${cmd[*]}\` through the front port (exit status $rc)"
        echo
        cat "$W/ha.table"
        echo
        echo "| server | --report lines (sessions) | of which ok | HAProxy connections (stot) |"
        echo "|---|---|---|---|"
        echo "| server 1 | $n1 | $ok1 | $(grep -o 's1=[0-9]*' <<<"$stat" | cut -d= -f2) |"
        echo "| server 2 | $n2 | $ok2 | $(grep -o 's2=[0-9]*' <<<"$stat" | cut -d= -f2) |"
        echo
        echo "Dealer --report lines: $(wc -l <"$W/ha-dealer.jsonl" 2>/dev/null || echo 0). Exit status on SIGTERM: server 1 $e1, server 2 $e2, dealer $ed, haproxy $eh."
    } >"$OUT/serving-haproxy.md"
    cat "$W/ha.table"
    echo "serving.sh: haproxy: server 1 served $n1 session(s) ($ok1 ok), server 2 $n2 ($ok2 ok); HAProxy: $stat; load generator exit $rc" >&2
    echo "serving.sh: haproxy: wrote $OUT/serving-haproxy.md" >&2
}

for p in "${PARTS[@]}"; do
    "part_$p"
done
