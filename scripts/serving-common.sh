# Helpers shared by scripts/serving.sh and scripts/serving-faults.sh
# (sourced, not run). Callers define W (the work directory), an associative
# array PID and FG before using them.

# fgwait CMD...: CMD (a `timeout ...` command, which leads its own process
# group) in the foreground, waited for so that a signal to the script
# interrupts the wait and its cleanup ends CMD too (through FG).
fgwait() {
    "$@" &
    FG=$!
    local rc=0
    wait "$FG" || rc=$?
    FG=""
    return "$rc"
}

# running PID: the process exists and is not a zombie.
running() {
    local st
    st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# start NAME CMD...: CMD in the background in its own process group, its
# output in $W/NAME.out and $W/NAME.err.
start() {
    local name=$1
    shift
    setsid "$@" </dev/null >"$W/$name.out" 2>"$W/$name.err" &
    PID[$name]=$!
}

# ports N: N distinct free TCP ports on 127.0.0.1 (held together while chosen).
ports() {
    python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

# mem PID FIELD: FIELD (VmRSS, VmHWM) of /proc/PID/status in MiB.
mem() {
    awk -v f="$2:" '$1 == f { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "(exited)"
}

# metric TEXT NAME: the value of NAME in a scraped page (first series).
metric() {
    awk -v n="$2" 'index($1, n "{") == 1 || $1 == n { print $2; exit }' <<<"$1"
}

# The release binaries (built unless NO_BUILD is set; LIBTORCH found if
# unset) and the inputs both scripts use: P, LOAD, CARD, DATA; OUT made;
# W a fresh work directory /tmp/PREFIX.XXXXXX. Usage: prepare SCRIPT PREFIX.
prepare() {
    if [ -z "${LIBTORCH:-}" ]; then
        LIBTORCH="$(scripts/install-torch.sh --print-libtorch 2>/dev/null || true)"
        [ -z "$LIBTORCH" ] || export LIBTORCH
    fi
    if [ -z "${NO_BUILD:-}" ]; then
        echo "$1: building (release)" >&2
        nice -n 5 cargo build --release -q -p pann-bin --examples --bins
    fi
    P=target/release/pann-party
    LOAD=target/release/examples/load
    CARD=models/assets/resnet20-akamaster.card.json
    DATA=models/tests/data/test_batch_first64.bin
    mkdir -p "$OUT"
    W=$(mktemp -d "/tmp/$2.XXXXXX")
}
