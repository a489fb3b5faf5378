#!/usr/bin/env bash
# Runs the whole test suite: starts the services the connector tests talk to (PostgreSQL,
# RabbitMQ; see scripts/services.sh), then unit, integration, property and doc tests of every
# crate, then every example as a smoke test.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

scripts/services.sh
cargo test --workspace --all-features
scripts/run-examples.sh
