#!/usr/bin/env bash
# Fault injection against one long-running pann-party server and dealer
# (issue 13, docs/results/serving.md): RUNS runs, each of which starts a
# victim client (one session of VICTIM_COUNT images in batches of 1, a few
# seconds) and injects one fault picked at random (seeded; the seed is
# printed) at a random point 0.1-3 s after the victim's start:
#
#   client-kill   kill -9 the victim
#   client-stop   SIGSTOP the victim for STOP_MIN_MS..STOP_MAX_MS, then kill -9 it
#   dealer-kill   kill -9 the dealer, then restart it on the same port
#   dealer-stop   SIGSTOP the dealer for STOP_MIN_MS..STOP_MAX_MS, then SIGCONT
#   cut           the victim reaches the server or the dealer (picked at
#                 random) through a TCP relay (socat if installed, else a
#                 python3 relay), which is killed with -9 mid-run
#
# After every fault: the victim must have ended within VICTIM_DEADLINE s of
# its start (else it is killed and counted as a hang), the server process
# must be alive, and a fresh good client (one image) must succeed within
# NEXT_DEADLINE s with the class of the in-process fixed-point reference.
# The server and the dealer run with a short --timeout (TIMEOUT, 10 s) and
# --session-deadline (SESSION_DEADLINE, 60 s), so frozen peers are detected;
# the default stops (1-12 s) outlast that timeout about half the time. At
# the end (after TIMEOUT + 5 s) the server's and the dealer's /metrics must
# show nothing in flight or waiting.
#
#   scripts/serving-faults.sh                    RUNS=100, a seed from the clock
#   RUNS=6 SEED=42 OUT=/tmp/f scripts/serving-faults.sh
#
# Environment (defaults): RUNS (100), SEED (the clock), OUT (docs/results),
# TIMEOUT (10), SESSION_DEADLINE (60), CLIENT_TIMEOUT (10: the clients'
# --timeout), VICTIM_COUNT (8), VICTIM_DEADLINE (60), NEXT_DEADLINE (60),
# STOP_MIN_MS (1000), STOP_MAX_MS (12000), KINDS (all five), DEALER_ARGS
# and SERVER_ARGS (extra flags, e.g. DEALER_ARGS="--pool 2"), KEEP (set:
# keep the work directory with every log), NO_BUILD (set: use the binaries
# already in target/release).
#
# Prints a summary and writes OUT/serving-faults.md. Exits 1 if any check
# failed. Everything listens on 127.0.0.1 only; every wait is bounded; every
# process started here runs in its own process group and is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/serving-common.sh
. scripts/serving-common.sh

RUNS=${RUNS:-100}
SEED=${SEED:-$(date +%s)}
OUT=${OUT:-docs/results}
TIMEOUT=${TIMEOUT:-10}
SESSION_DEADLINE=${SESSION_DEADLINE:-60}
CLIENT_TIMEOUT=${CLIENT_TIMEOUT:-10}
VICTIM_COUNT=${VICTIM_COUNT:-8}
VICTIM_DEADLINE=${VICTIM_DEADLINE:-60}
NEXT_DEADLINE=${NEXT_DEADLINE:-60}
STOP_MIN_MS=${STOP_MIN_MS:-1000}
STOP_MAX_MS=${STOP_MAX_MS:-12000}
KINDS=${KINDS:-client-kill client-stop dealer-kill dealer-stop cut}
DEALER_ARGS=${DEALER_ARGS:-}
SERVER_ARGS=${SERVER_ARGS:-}
read -r -a KIND <<<"$KINDS"
for k in "${KIND[@]}"; do
    case $k in
    client-kill | client-stop | dealer-kill | dealer-stop | cut) ;;
    *)
        echo "serving-faults.sh: unknown fault kind $k (client-kill client-stop dealer-kill dealer-stop cut)" >&2
        exit 2
        ;;
    esac
done
INVOCATION="RUNS=$RUNS SEED=$SEED TIMEOUT=$TIMEOUT SESSION_DEADLINE=$SESSION_DEADLINE CLIENT_TIMEOUT=$CLIENT_TIMEOUT VICTIM_COUNT=$VICTIM_COUNT VICTIM_DEADLINE=$VICTIM_DEADLINE NEXT_DEADLINE=$NEXT_DEADLINE STOP_MIN_MS=$STOP_MIN_MS STOP_MAX_MS=$STOP_MAX_MS KINDS=\"$KINDS\" DEALER_ARGS=\"$DEALER_ARGS\" SERVER_ARGS=\"$SERVER_ARGS\" scripts/serving-faults.sh"
echo "serving-faults.sh: seed $SEED ($INVOCATION)" >&2
RANDOM=$SEED

prepare serving-faults.sh pann-faults

# Background processes: name -> pid (each the leader of its own process group).
declare -A PID=()
FG=""
cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    if [ -n "$FG" ]; then kill -TERM -- "-$FG" 2>/dev/null || kill -TERM "$FG" 2>/dev/null || true; fi
    # A stopped process does not act on SIGTERM until continued.
    for pid in "${PID[@]}"; do kill -CONT -- "-$pid" 2>/dev/null || true; kill -TERM -- "-$pid" 2>/dev/null || true; done
    for i in $(seq 50); do
        local left=0
        for pid in "${PID[@]}"; do running "$pid" && left=1; done
        [ $left = 0 ] && break
        sleep 0.1
    done
    for pid in "${PID[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
    if [ -n "${KEEP:-}" ]; then echo "serving-faults.sh: logs kept in $W" >&2; else rm -rf "$W"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# reap NAME: after the process ended (or was killed), collect its status into ST.
reap() {
    local pid=${PID[$1]}
    ST=0
    wait "$pid" 2>/dev/null || ST=$?
    unset "PID[$1]"
}

# kill9 NAME: SIGKILL its process group, then reap it (bounded).
kill9() {
    local pid=${PID[$1]} i
    kill -KILL -- "-$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        running "$pid" || break
        sleep 0.05
    done
    reap "$1"
}

# stop NAME [SECONDS]: SIGTERM, wait (bounded), then SIGKILL; ST = the exit status or "killed".
stop() {
    local name=$1 secs=${2:-60} pid=${PID[$1]:-} i
    ST="-"
    [ -n "$pid" ] || return 0
    kill -TERM -- "-$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 10; i++)); do
        running "$pid" || break
        sleep 0.1
    done
    if running "$pid"; then
        kill9 "$name"
        ST=killed
    else
        reap "$name"
    fi
}

# wait_until NAME DEADLINE_MS: wait until the process ends or the clock
# (ms) passes DEADLINE_MS; then kill it. ST = its exit status or "hang".
wait_until() {
    local name=$1 deadline=$2 pid=${PID[$1]}
    while running "$pid" && [ "$(now)" -lt "$deadline" ]; do sleep 0.05; done
    if running "$pid"; then
        kill9 "$name"
        ST=hang
    else
        reap "$name"
    fi
}

# wait_for NAME TEXT SECONDS: until TEXT appears in NAME's stderr; returns 1 if not.
wait_for() {
    local name=$1 text=$2 secs=$3 i
    for ((i = 0; i < secs * 10; i++)); do
        grep -q "$text" "$W/$name.err" 2>/dev/null && return 0
        running "${PID[$name]}" || break
        sleep 0.1
    done
    return 1
}

# listening PORT: something listens on 127.0.0.1:PORT.
listening() {
    ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

# now: the clock in milliseconds.
now() {
    local t=${EPOCHREALTIME/./}
    echo $((t / 1000))
}

scrape() {
    python3 -c 'import sys, urllib.request; print(urllib.request.urlopen("http://" + sys.argv[1] + "/metrics", timeout=5).read().decode())' "$1" 2>/dev/null || true
}

# A TCP relay on 127.0.0.1:LISTEN to 127.0.0.1:TARGET, one thread pair per connection.
RELAY_PY='
import socket, sys, threading
listen, target = int(sys.argv[1]), int(sys.argv[2])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", listen))
ls.listen(16)
def pump(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    finally:
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass
while True:
    c, _ = ls.accept()
    try:
        u = socket.create_connection(("127.0.0.1", target), timeout=10)
        u.settimeout(None)
    except OSError:
        c.close()
        continue
    threading.Thread(target=pump, args=(c, u), daemon=True).start()
    threading.Thread(target=pump, args=(u, c), daemon=True).start()
'
if command -v socat >/dev/null; then RELAY="socat $(socat -V 2>/dev/null | awk '/socat version/ { print $3; exit }')"; else RELAY="python3 relay"; fi

# The fixed-point reference class of every record, once.
echo "serving-faults.sh: the fixed-point reference of every record of $DATA" >&2
fgwait timeout 600 "$LOAD" --reference-only --alpha 9 --card "$CARD" --input "$DATA" >"$W/reference.json" 2>"$W/reference.err" || {
    cat "$W/reference.err" >&2
    exit 1
}
read -r DIGEST NREC < <(python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print(r["model_digest"], len(r["classes"]))' "$W/reference.json")
mapfile -t CLASS < <(python3 -c 'import json, sys; print("\n".join(map(str, json.load(open(sys.argv[1]))["classes"])))' "$W/reference.json")
target/release/pann certs --local "$W/certs" >/dev/null

read -r SP DP MP DMP < <(ports 4)
exec 3>&2
DEALERS=0
start_dealer() {
    local name="dealer$DEALERS" t
    DEALERS=$((DEALERS + 1))
    # The port may still be held for a moment after a kill: retry within 30 s.
    for t in $(seq 30); do
        start "$name" "$P" --role dealer --listen "127.0.0.1:$DP" --timeout "$TIMEOUT" --session-deadline "$SESSION_DEADLINE" --max-sessions 16 \
            --metrics "127.0.0.1:$DMP" --report "$W/dealer.jsonl" --certs "$W/certs/dealer" $DEALER_ARGS
        if wait_for "$name" "listening on" 30; then
            DEALER=$name
            return 0
        fi
        reap "$name"
        echo "serving-faults.sh: the dealer did not start (attempt $t): $(tail -n 1 "$W/$name.err")" >&3
        sleep 1
    done
    echo "serving-faults.sh: the dealer cannot be restarted on 127.0.0.1:$DP" >&3
    exit 1
}
start_dealer
start server "$P" --role server --listen "127.0.0.1:$SP" --dealer "127.0.0.1:$DP" --alpha 9 --model "$CARD" --max-sessions 8 --queue 16 \
    --timeout "$TIMEOUT" --session-deadline "$SESSION_DEADLINE" --metrics "127.0.0.1:$MP" --report "$W/server.jsonl" --certs "$W/certs/server" $SERVER_ARGS
wait_for server "listening on" 120 || { echo "serving-faults.sh: the server did not start:" >&2; tail -n 20 "$W/server.err" >&2; exit 1; }
SERVER=${PID[server]}

# client NAME FIRST COUNT SERVER_ADDR DEALER_ADDR: a client process.
client() {
    start "$1" "$P" --role client --connect "$4" --dealer "$5" --alpha 9 --expect-model "$DIGEST" --timeout "$CLIENT_TIMEOUT" \
        --input "$DATA" --first "$2" --count "$3" --batch 1 --report "$W/$1.json" --certs "$W/certs/client"
}

# good NAME: a fresh one-image client; sets GOOD_RC, GOOD_S and GOOD_CLASS
# ("ok", "wrong (C vs R)" or "-").
good() {
    local name=$1 first=$((RANDOM % NREC)) t0
    t0=$(now)
    client "$name" "$first" 1 "127.0.0.1:$SP" "127.0.0.1:$DP"
    wait_until "$name" $((t0 + NEXT_DEADLINE * 1000))
    GOOD_RC=$ST
    GOOD_S=$(awk -v ms=$(($(now) - t0)) 'BEGIN { printf "%.2f", ms / 1000 }')
    GOOD_CLASS="-"
    if [ "$GOOD_RC" = 0 ]; then
        local c
        c=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["predictions"][0].get("class"))' "$W/$name.json" 2>/dev/null || echo "?")
        if [ "$c" = "${CLASS[$first]}" ]; then GOOD_CLASS=ok; else GOOD_CLASS="wrong ($c vs ${CLASS[$first]})"; fi
    fi
}

good warmup
[ "$GOOD_RC" = 0 ] && [ "$GOOD_CLASS" = ok ] || {
    echo "serving-faults.sh: the first client failed ($GOOD_RC, $GOOD_CLASS):" >&2
    tail -n 5 "$W/warmup.err" "$W/server.err" >&2
    exit 1
}
RSS0=$(mem "$SERVER" VmRSS)
echo "serving-faults.sh: server and dealer up; first client ok in $GOOD_S s; $RUNS runs, relay: $RELAY" >&2

ROWS=()
declare -A N=() HIT=() ALIVE=() NEXT_OK=() HANGS=() MAXRUN=() VFAIL=() VOK=()
FAILED_CHECKS=0
t_all=$(now)
# The loop's stderr goes to a file: bash reports each process killed here
# ("Killed"); anything else found there is shown after the loop. Progress
# goes to fd 3, the script's stderr.
for ((run = 1; run <= RUNS; run++)); do
    kind=${KIND[RANDOM % ${#KIND[@]}]}
    at_ms=$((100 + RANDOM % 2901))
    stop_ms=$((STOP_MIN_MS + RANDOM % (STOP_MAX_MS - STOP_MIN_MS + 1)))
    vfirst=$((RANDOM % (NREC - VICTIM_COUNT + 1)))
    side=server
    if [ $((RANDOM % 2)) = 1 ]; then side=dealer; fi
    detail=""
    vserver="127.0.0.1:$SP"
    vdealer="127.0.0.1:$DP"
    if [ "$kind" = cut ]; then
        read -r RP < <(ports 1)
        target=$SP
        if [ "$side" = dealer ]; then target=$DP; fi
        if [[ $RELAY == socat* ]]; then
            start relay socat "TCP-LISTEN:$RP,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$target"
        else
            start relay python3 -c "$RELAY_PY" "$RP" "$target"
        fi
        for i in $(seq 100); do
            listening "$RP" && break
            sleep 0.05
        done
        if [ "$side" = server ]; then vserver="127.0.0.1:$RP"; else vdealer="127.0.0.1:$RP"; fi
        detail="client-$side connection"
    fi
    if [ "$kind" = client-stop ] || [ "$kind" = dealer-stop ]; then detail="stopped ${stop_ms} ms"; fi
    t0=$(now)
    client victim "$vfirst" "$VICTIM_COUNT" "$vserver" "$vdealer"
    vpid=${PID[victim]}
    sleep "$(awk -v ms="$at_ms" 'BEGIN { printf "%.3f", ms / 1000 }')"
    hit=no
    running "$vpid" && hit=yes
    case $kind in
    client-kill)
        kill -KILL -- "-$vpid" 2>/dev/null || true
        ;;
    client-stop)
        kill -STOP -- "-$vpid" 2>/dev/null || true
        sleep "$(awk -v ms="$stop_ms" 'BEGIN { printf "%.3f", ms / 1000 }')"
        kill -KILL -- "-$vpid" 2>/dev/null || true
        ;;
    dealer-kill)
        kill9 "$DEALER"
        start_dealer
        ;;
    dealer-stop)
        dpid=${PID[$DEALER]}
        kill -STOP -- "-$dpid"
        sleep "$(awk -v ms="$stop_ms" 'BEGIN { printf "%.3f", ms / 1000 }')"
        kill -CONT -- "-$dpid"
        ;;
    cut)
        kill9 relay
        ;;
    esac
    # The victim must end within its deadline.
    wait_until victim $((t0 + VICTIM_DEADLINE * 1000))
    vrc=$ST
    vs=$(awk -v ms=$(($(now) - t0)) 'BEGIN { printf "%.2f", ms / 1000 }')
    vmsg=$(grep -h "error:" "$W/victim.err" 2>/dev/null | head -1 | sed -e 's/^client: error: //' -e 's/|/\\|/g' | cut -c1-160 || true)
    if [ -n "${PID[relay]:-}" ]; then kill9 relay; fi
    alive=yes
    running "$SERVER" || alive=no
    good "next$run"
    mv "$W/victim.err" "$W/victim$run.err" 2>/dev/null || true
    if ! running "$SERVER"; then alive=no; fi
    rs=$(awk -v ms=$(($(now) - t0)) 'BEGIN { printf "%.2f", ms / 1000 }')
    hang=0
    if [ "$vrc" = hang ]; then hang=$((hang + 1)); fi
    if [ "$GOOD_RC" = hang ]; then hang=$((hang + 1)); fi
    ok_next=0
    if [ "$GOOD_RC" = 0 ] && [ "$GOOD_CLASS" = ok ]; then ok_next=1; fi
    if [ "$alive" != yes ] || [ $ok_next = 0 ] || [ $hang -gt 0 ]; then FAILED_CHECKS=$((FAILED_CHECKS + 1)); fi
    N[$kind]=$((${N[$kind]:-0} + 1))
    if [ $hit = yes ]; then HIT[$kind]=$((${HIT[$kind]:-0} + 1)); fi
    if [ $alive = yes ]; then ALIVE[$kind]=$((${ALIVE[$kind]:-0} + 1)); fi
    NEXT_OK[$kind]=$((${NEXT_OK[$kind]:-0} + ok_next))
    HANGS[$kind]=$((${HANGS[$kind]:-0} + hang))
    if [ "$vrc" = 0 ]; then VOK[$kind]=$((${VOK[$kind]:-0} + 1)); fi
    if [ "$vrc" = 1 ]; then VFAIL[$kind]=$((${VFAIL[$kind]:-0} + 1)); fi
    MAXRUN[$kind]=$(awk -v a="${MAXRUN[$kind]:-0}" -v b="$rs" 'BEGIN { print (b > a) ? b : a }')
    row="| $run | $kind | ${detail:--} | $at_ms | $hit | $vrc | $vs | ${vmsg:--} | $alive | $GOOD_RC | $GOOD_S | $GOOD_CLASS | $rs |"
    ROWS+=("$row")
    echo "serving-faults.sh: $row" >&3
    if [ "$alive" != yes ]; then
        echo "serving-faults.sh: the server died; its last words:" >&3
        tail -n 20 "$W/server.err" >&3
        break
    fi
done 2>>"$W/loop.err"
t_all=$(($(now) - t_all))
grep -v -E '^(.*line [0-9]+: +[0-9]+ Killed .*|)$' "$W/loop.err" >&2 || true

# Nothing may be left in flight once the timeouts have passed.
sleep $((TIMEOUT + 5))
spage=$(scrape "127.0.0.1:$MP")
dpage=$(scrape "127.0.0.1:$DMP")
RSS1=$(mem "$SERVER" VmRSS)
HWM1=$(mem "$SERVER" VmHWM)
s_inflight=$(metric "$spage" pann_sessions_in_flight)
s_waiting=$(metric "$spage" pann_sessions_waiting)
d_inflight=$(metric "$dpage" pann_sessions_in_flight)
d_waiting=$(metric "$dpage" pann_sessions_waiting)
panics=$(cat "$W"/server.err "$W"/dealer*.err | grep -c panicked || true)
stop server 60
s_exit=$ST
stop "$DEALER" 60
d_exit=$ST
[ "${s_inflight:-x}" = 0 ] && [ "${s_waiting:-x}" = 0 ] && [ "${d_inflight:-x}" = 0 ] && [ "${d_waiting:-x}" = 0 ] || FAILED_CHECKS=$((FAILED_CHECKS + 1))
[ "$panics" = 0 ] || FAILED_CHECKS=$((FAILED_CHECKS + 1))
[ "$s_exit" = 0 ] || FAILED_CHECKS=$((FAILED_CHECKS + 1))

summary() {
    echo "| fault | runs | fault while the victim ran | victim failed (exit 1) | victim succeeded | server alive after | next client ok (class = reference) | hangs | longest run s |"
    echo "|---|---|---|---|---|---|---|---|---|"
    local k tr=0 th=0 ta=0 tn=0 tg=0 tf=0 to=0 tm=0
    for k in client-kill client-stop dealer-kill dealer-stop cut; do
        [ -n "${N[$k]:-}" ] || continue
        echo "| $k | ${N[$k]} | ${HIT[$k]:-0} | ${VFAIL[$k]:-0} | ${VOK[$k]:-0} | ${ALIVE[$k]:-0} | ${NEXT_OK[$k]:-0} | ${HANGS[$k]:-0} | ${MAXRUN[$k]} |"
        tr=$((tr + N[$k])) th=$((th + ${HIT[$k]:-0})) ta=$((ta + ${ALIVE[$k]:-0})) tn=$((tn + ${NEXT_OK[$k]:-0})) tg=$((tg + ${HANGS[$k]:-0}))
        tf=$((tf + ${VFAIL[$k]:-0})) to=$((to + ${VOK[$k]:-0}))
        tm=$(awk -v a="$tm" -v b="${MAXRUN[$k]}" 'BEGIN { print (b > a) ? b : a }')
    done
    echo "| **all** | $tr | $th | $tf | $to | $ta | $tn | $tg | $tm |"
}

{
    echo "# Serving: fault injection"
    echo
    echo "- Machine: $(nproc) core(s) ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) of memory, $(uname -sr)"
    echo "- Commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "- Date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "- Command: \`$INVOCATION\` (seed $SEED)"
    echo "- One server (\`--max-sessions 8 --queue 16 --timeout $TIMEOUT --session-deadline $SESSION_DEADLINE $SERVER_ARGS\`) and one dealer (\`--max-sessions 16 --timeout $TIMEOUT --session-deadline $SESSION_DEADLINE $DEALER_ARGS\`) for all runs, pinned TLS on 127.0.0.1; ResNet-20 at alpha 9; relay: $RELAY"
    echo "- Each run: a victim client (\`--timeout $CLIENT_TIMEOUT\`, $VICTIM_COUNT images in batches of 1, one session) and one fault at a random point 100-3000 ms after its start; stops last $STOP_MIN_MS-$STOP_MAX_MS ms. Then: the victim must have ended within $VICTIM_DEADLINE s of its start (else: a hang), the server must be alive, and a fresh one-image client must succeed within $NEXT_DEADLINE s with the reference's class. A run's time is from the victim's start to the next client's end."
    echo "- $RUNS runs in $(awk -v ms="$t_all" 'BEGIN { printf "%.0f", ms / 1000 }') s; $FAILED_CHECKS failed check(s)"
    echo
    summary
    echo
    echo "After the runs (and $((TIMEOUT + 5)) s): server in flight ${s_inflight:-?}, waiting ${s_waiting:-?}, completed $(metric "$spage" pann_sessions_completed_total), failed $(metric "$spage" pann_sessions_failed_total); dealer in flight ${d_inflight:-?}, waiting ${d_waiting:-?} (since its last restart; $((DEALERS - 1)) restart(s)); server VmRSS $RSS0 MiB after the first client, $RSS1 MiB at the end (VmHWM $HWM1 MiB); \"panicked\" in the logs: $panics; exit status on SIGTERM: server $s_exit, dealer $d_exit."
    echo
    echo "Every run (victim exit: 0 ok, 1 failed with an error, 137 killed by the script, hang; the victim's error line as it printed it):"
    echo
    echo "| run | fault | detail | at ms | victim running at the fault | victim exit | victim s | victim's error | server alive | next client exit | next client s | next class | run s |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
} >"$OUT/serving-faults.md"

echo
summary
echo
echo "seed $SEED; $FAILED_CHECKS failed check(s); server in flight ${s_inflight:-?} waiting ${s_waiting:-?}, dealer in flight ${d_inflight:-?} waiting ${d_waiting:-?}; panics $panics; server exit on SIGTERM $s_exit"
echo "serving-faults.sh: wrote $OUT/serving-faults.md" >&2
[ "$FAILED_CHECKS" = 0 ]
