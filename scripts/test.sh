#!/usr/bin/env bash
# Every gate a change must pass, in the order that fails fastest: formatting, lints, tests, then
# real third-party clients against a live server (tests/e2e/run.sh).
# Needs a Rust toolchain from rustup (with its default rustfmt and clippy components) and, for
# the real-client step, Python >= 3.9 with venv and pip; its pinned packages are installed into
# ~/.cache/tributary-venv (E2E_VENV) on the first run, from PyPI.
#
#   ./scripts/test.sh            # from anywhere inside the repository
#   CARGO_TARGET_DIR=/tmp/t ./scripts/test.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Builds are shared between checkouts and survive `git clean`; override to build elsewhere.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-/tmp}/.cache/tributary-target}"

for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    echo "error: cargo ${component/rustfmt/fmt} is missing; install it with: rustup component add ${component}" >&2
    exit 2
  fi
done

step() { printf '\n==> %s\n' "$*" >&2; }

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace"
cargo test --workspace

step "real clients: Segment python, boto3, schemathesis"
# cargo test built the binary already; this only makes sure (and is a no-op when it did).
cargo build -p tributary
tests/e2e/setup_python.sh >/dev/null
tests/e2e/run.sh "$CARGO_TARGET_DIR/debug/tributary"
