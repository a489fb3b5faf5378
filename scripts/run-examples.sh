#!/usr/bin/env bash
# Builds every binary of weir-examples and runs each one as a smoke test. Every example
# asserts the facts it demonstrates and exits non-zero when one does not hold; this script
# runs them all, then fails if any failed (or ran longer than the time limit).
#
#   scripts/run-examples.sh                  # all examples
#   scripts/run-examples.sh pattern_03_broadcast backpressure   # only these
#   VERBOSE=1 scripts/run-examples.sh        # also print the output of passing examples
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

LIMIT="${EXAMPLE_TIMEOUT:-60}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"

cargo build -p weir-examples --bins

if [ "$#" -gt 0 ]; then
    examples=("$@")
else
    examples=()
    for source in examples/src/bin/*.rs examples/src/bin/*/main.rs; do
        [ -e "$source" ] || continue
        case "$source" in
            */main.rs) name="$(basename "$(dirname "$source")")" ;;
            *) name="$(basename "$source" .rs)" ;;
        esac
        examples+=("$name")
    done
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
failed=()
for name in "${examples[@]}"; do
    binary="$TARGET_DIR/debug/$name"
    if [ ! -x "$binary" ]; then
        echo "FAIL  $name: no binary at $binary"
        failed+=("$name")
        continue
    fi
    start="$(date +%s%N)"
    status=0
    # No backtraces: the examples' assertion messages say what went wrong.
    RUST_BACKTRACE=0 timeout "$LIMIT" "$binary" >"$log" 2>&1 || status=$?
    millis=$(( ($(date +%s%N) - start) / 1000000 ))
    if [ "$status" -eq 0 ]; then
        echo "ok    $name (${millis} ms)"
        if [ -n "${VERBOSE:-}" ]; then sed 's/^/      | /' "$log"; fi
    else
        if [ "$status" -eq 124 ]; then
            echo "FAIL  $name: still running after ${LIMIT} s, killed"
        else
            echo "FAIL  $name: exit status $status after ${millis} ms; last lines of its output:"
        fi
        tail -n 40 "$log" | sed 's/^/      | /'
        failed+=("$name")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "${#failed[@]} of ${#examples[@]} examples failed: ${failed[*]}"
    exit 1
fi
echo "all ${#examples[@]} examples passed"
