#!/usr/bin/env bash
# Runs the whole test suite: unit, integration, property and doc tests of every crate, then
# every example as a smoke test. Later layers add the services they need here.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

cargo test --workspace --all-features
scripts/run-examples.sh
