#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60), one after another,
# and prints one line per target. Exits non-zero when any target crashes,
# hangs (-timeout) or grows past the memory limit (-rss_limit_mb).
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs the nightly toolchain; installs cargo-fuzz when it is missing.
# Targets are built without a sanitizer (the crates forbid unsafe code) and
# with debug assertions, so arithmetic overflow panics. New inputs go to a
# scratch corpus; the committed seeds in fuzz/corpus/<target> are only read.
# Crashing inputs are written to fuzz/artifacts/<target>/.
#
# With FUZZ_GROW_CORPUS=1, the inputs found that cover edges the committed
# corpus does not are then merged into fuzz/corpus/<target> (a small set
# cover, edges only), to commit them.
set -euo pipefail

seconds="${1:-60}"
shift || true
cd "$(dirname "$0")"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked >&2
fi

flags=(--sanitizer none --debug-assertions)
cargo +nightly fuzz build "${flags[@]}" >&2

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

failed=0
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target" "corpus/$target" "artifacts/$target"
    log="$scratch/$target.log"
    if cargo +nightly fuzz run "${flags[@]}" "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
        -print_final_stats=1 >"$log" 2>&1; then
        runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
        cov="$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)"
        if [ "${FUZZ_GROW_CORPUS:-0}" = 1 ]; then
            cargo +nightly fuzz run "${flags[@]}" "$target" "corpus/$target" "$scratch/$target" -- \
                -set_cover_merge=1 -use_counters=0 -max_len=65536 -rss_limit_mb=2048 \
                -timeout=10 >>"$log" 2>&1
        fi
        echo "$target: ok, ${runs:-?} runs in ${seconds}s, coverage ${cov:-?}"
    else
        failed=1
        artifact="$(grep -o 'artifacts/[^ ]*' "$log" | tail -n 1 || true)"
        echo "$target: FAILED${artifact:+, input in fuzz/$artifact}"
        tail -n 40 "$log" | sed "s/^/    /" >&2
    fi
done
exit "$failed"
