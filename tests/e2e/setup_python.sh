#!/usr/bin/env bash
# Creates (or reuses) the Python venv of the real-client end-to-end checks and installs the
# pinned packages of tests/e2e/requirements.txt into it: Segment's analytics-python, boto3 and
# schemathesis. Needs Python >= 3.9 with the venv module (CI: Python 3.11 + pip) and, the first
# time, a reachable package index.
#
#   tests/e2e/setup_python.sh                 # venv in ~/.cache/tributary-venv
#   E2E_VENV=/tmp/v tests/e2e/setup_python.sh
#   PYTHON=python3.12 tests/e2e/setup_python.sh
#
# Idempotent and fast: a stamp file in the venv records the requirements and the interpreter it
# was installed for; when both are unchanged and the venv's python still runs, nothing is done.
# Prints the venv's directory on stdout (messages go to stderr).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
requirements="$here/requirements.txt"
venv="${E2E_VENV:-${HOME:-/tmp}/.cache/tributary-venv}"
python="${PYTHON:-python3}"
stamp="$venv/.tributary-e2e-stamp"
# Only when `python -m venv` cannot make a venv with pip (see below).
virtualenv_version=21.15.8

say() { printf 'setup_python: %s\n' "$*" >&2; }

if ! command -v "$python" >/dev/null 2>&1; then
  say "error: $python not found; install Python >= 3.9 (with venv and pip) or set PYTHON"
  exit 2
fi
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)'; then
  say "error: $("$python" --version 2>&1) is too old; Python >= 3.9 is needed"
  exit 2
fi

# What the stamp must say for the venv to be reused: the pins and the interpreter's version.
wanted() {
  "$python" -c 'import platform; print("python", platform.python_version())'
  grep -v '^[[:space:]]*\(#\|$\)' "$requirements"
}

mkdir -p "$(dirname "$venv")"
# Two runs at once (two checkouts sharing the cache) install one after the other.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$venv.lock"
  flock 9
fi

if [[ -f "$stamp" && -x "$venv/bin/python" ]] \
  && "$venv/bin/python" -c 'import sys' >/dev/null 2>&1 \
  && [[ "$(wanted)" == "$(cat "$stamp")" ]]; then
  say "up to date: $venv"
  echo "$venv"
  exit 0
fi

started=$SECONDS
if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import sys' >/dev/null 2>&1 \
  && [[ "$("$venv/bin/python" -c 'import platform; print(platform.python_version())')" \
     == "$("$python" -c 'import platform; print(platform.python_version())')" ]]; then
  say "updating $venv"
else
  # Missing, broken, or made by another interpreter: start over.
  say "creating $venv with $("$python" --version 2>&1)"
  rm -f "$stamp"
  if ! "$python" -m venv --clear "$venv"; then
    # Debian and Ubuntu ship the venv module without ensurepip unless python3-venv is installed.
    # virtualenv brings its own pip; installed with --target, it needs no (externally managed,
    # PEP 668) system site-packages.
    say "python -m venv failed; creating the venv with virtualenv $virtualenv_version instead"
    rm -rf "$venv" "$venv.virtualenv"
    "$python" -m pip install --disable-pip-version-check --no-input --quiet \
      --target "$venv.virtualenv" "virtualenv==$virtualenv_version"
    PYTHONPATH="$venv.virtualenv" "$python" -m virtualenv --quiet "$venv"
  fi
fi

rm -f "$stamp"
"$venv/bin/python" -m pip install --disable-pip-version-check --no-input --quiet \
  --requirement "$requirements"
# Only a complete install is stamped: an interrupted one is redone next time.
"$venv/bin/python" -c 'import segment.analytics, boto3, schemathesis, duckdb'
wanted >"$stamp"
say "installed $(grep -c '==' "$requirements") pinned packages in $((SECONDS - started)) s: $venv"
echo "$venv"
