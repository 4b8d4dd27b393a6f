#!/usr/bin/env bash
# The project's test command: the README's second command, and exactly what .ci/run runs.
# Installs what the tests need when missing (scripts/tools.sh), then: formatting, clippy, the config
# JSON Schema drift check, and every test of the workspace (brokers included: MockCluster in-process,
# a real nats-server and tansu spawned by the tests on free ports).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dastra-connect/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
start=$(date +%s)
step() { echo "== $* ($(( $(date +%s) - start ))s)"; }

step "tools"
eval "$(bash scripts/tools.sh)"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "config schema drift"
cargo run -q --locked -p dastra-connect -- schemas config --check

step "cargo test"
# Two test threads per binary: the machine has 2 cores and broker tests spawn servers.
cargo test --workspace --locked --no-fail-fast -- --test-threads=2

step "deploy files: Dockerfile, docker-compose, Helm chart (offline)" && bash scripts/validate-deploy.sh
step "done"
