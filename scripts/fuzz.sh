#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for RUNS executions (default 1,000,000)
# from its committed corpus, one target at a time, and prints a markdown table:
# target, executions, seconds, crashes, corpus files. New inputs go to a
# temporary directory, so the committed corpora stay small; a crashing input is
# left in fuzz/artifacts/<target>/ and the script exits 1.
# docs/results/fuzzing.md quotes its output. Needs the nightly toolchain and
# cargo-fuzz (`cargo install cargo-fuzz`); not part of `make test` (the
# corpora themselves are replayed there by engine/tests/fuzz_corpora.rs).
#
#   scripts/fuzz.sh [RUNS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
runs=${1:-1000000}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(ls fuzz_targets | sed 's/\.rs$//')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
nice -n 5 cargo +nightly fuzz build >/dev/null 2>&1
echo "| target | executions | seconds | crashes | committed corpus files |"
echo "|---|---|---|---|---|"
failed=0
for t in "${targets[@]}"; do
    mkdir -p "$work/$t"
    status=0
    nice -n 5 cargo +nightly fuzz run "$t" "$work/$t" "corpus/$t" -- \
        -runs="$runs" -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 -print_final_stats=1 >"$work/$t.log" 2>&1 || status=$?
    done_line=$(grep -E '^Done [0-9]+ runs' "$work/$t.log" | tail -1 || true)
    execs=$(echo "$done_line" | awk '{print $2}')
    secs=$(echo "$done_line" | awk '{print $5}')
    crashes=0
    if [ "$status" -ne 0 ]; then
        crashes=1
        failed=1
        grep -E 'ERROR|panicked|SUMMARY' "$work/$t.log" | head -3 >&2
    fi
    echo "| $t | ${execs:-?} | ${secs:-?} | $crashes | $(ls "corpus/$t" | wc -l) |"
done
exit $failed
