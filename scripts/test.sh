#!/usr/bin/env bash
# Every gate a change must pass, in the order that fails fastest: formatting, lints, tests.
# Needs only a Rust toolchain from rustup (with its default rustfmt and clippy components).
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
