#!/usr/bin/env bash
# Real-client end-to-end checks of `tributary serve`: unmodified third-party clients against a
# live server, and what they sent looked up in the stream.
#
#   tests/e2e/setup_python.sh && tests/e2e/run.sh [path/to/tributary]
#
# The binary defaults to $CARGO_TARGET_DIR/debug/tributary (~/.cache/tributary-target). Python
# comes from the venv setup_python.sh made (E2E_VENV, default ~/.cache/tributary-venv).
#
# In a temporary data directory: creates a write key, an AWS key pair and a signed key (tenant
# e2e), starts `serve --listen 127.0.0.1:0`, waits for /readyz, then
#   (a) Segment's analytics-python sends track/identify/page/screen/group/alias, once batched by
#       its consumer thread and once in sync_mode with gzip (segment_python.py); every messageId
#       must be in the stream once, intact (check_stream.py reads it with `stream read --json`);
#   (b) boto3 calls Kinesis PutRecord and PutRecords (kinesis_boto3.py); every record must be at
#       the ShardId/SequenceNumber the server answered, intact;
#   the lake: Tributary's SQL counts every stream record in raw_events and events, and DuckDB
#       over the same Hive-partitioned Parquet agrees (check_lake.py); another tenant's read key
#       sees none of it;
#   (c) schemathesis fuzzes every operation of /openapi.json — ingest, SQL (with a read key) and
#       the schema registry (without an admin key); schemathesis.toml says which checks and why,
#       schemathesis_hooks.py signs Kinesis requests with SigV4 and those carrying
#       X-Tributary-Signature with HMAC, so that they reach the body parsers: no 5xx, no dropped
#       connection, answers as documented; afterwards the process must be alive and /healthz 200;
# finally SIGTERM must stop the server with exit 0, and `stream verify` must find no damage.
# Prints one line per check, then `N passed, M failed`; exits 1 when a check failed (the
# temporary directory, with the server's log and the outputs, is then kept and named).
#
# Knobs: TRIBUTARY_E2E_MAX_EXAMPLES (schemathesis cases per operation and phase, default 25),
# TRIBUTARY_E2E_SEED (schemathesis seed; default random, printed), TRIBUTARY_E2E_KEEP=1 (keep the
# temporary directory even when everything passed).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
binary="${1:-${CARGO_TARGET_DIR:-${HOME:-/tmp}/.cache/tributary-target}/debug/tributary}"
venv="${E2E_VENV:-${HOME:-/tmp}/.cache/tributary-venv}"
python="$venv/bin/python"
max_examples="${TRIBUTARY_E2E_MAX_EXAMPLES:-25}"
seed="${TRIBUTARY_E2E_SEED:-}"
keep="${TRIBUTARY_E2E_KEEP:-0}"
# Hard bounds: a hung client or fuzzer fails its check instead of hanging CI.
client_timeout=120
fuzz_timeout=300

# tributary reads every TRIBUTARY_* variable as configuration and refuses unknown ones: the
# knobs above (and E2E_VENV) would make it fail, and a caller's TRIBUTARY_STREAM__… would
# change the server under test. It runs with none of them.
while read -r name; do
  unset "$name"
done < <(compgen -e | grep '^TRIBUTARY_' || true)
# Its log filter too: the "listening on" line must be there.
unset RUST_LOG

if [[ ! -x "$binary" ]]; then
  echo "run.sh: error: no tributary binary at $binary (build it with: cargo build -p tributary)" >&2
  exit 2
fi
binary="$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")"
if [[ ! -x "$python" || ! -x "$venv/bin/schemathesis" ]]; then
  echo "run.sh: error: no e2e venv at $venv (create it with: tests/e2e/setup_python.sh)" >&2
  exit 2
fi

passed=0
failed=0
pass() {
  passed=$((passed + 1))
  printf 'ok   %s\n' "$*"
}
fail() {
  failed=$((failed + 1))
  printf 'FAIL %s\n' "$*"
}
step() { printf '\n--- %s\n' "$*"; }

# `timeout` where there is one (coreutils; not on a bare macOS).
bounded() {
  local seconds=$1
  shift
  if command -v timeout >/dev/null 2>&1; then
    timeout --kill-after=10 "$seconds" "$@"
  else
    "$@"
  fi
}

# The status of GET $1, or 000 when there is no answer.
http_status() {
  "$python" - "$1" <<'EOF'
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=10) as response:
        print(response.status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
EOF
}

work="$(mktemp -d "${TMPDIR:-/tmp}/tributary-e2e.XXXXXX")"
data="$work/data"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [[ $failed -eq 0 && "$keep" != 1 ]]; then
    rm -rf "$work"
  else
    echo "run.sh: outputs and the server's log are in $work" >&2
  fi
}
trap cleanup EXIT
# No ./tributary.toml of the caller's may configure the server under test.
cd "$work"

# --- the server ---------------------------------------------------------------------------------
step "server: $binary"
tenant=e2e
write_key="" aws_access_key="" aws_secret="" signed_key="" signing_secret=""
write_key="$("$binary" keys create --data "$data" --tenant "$tenant" --role write \
  2>>"$work/keys.log")" || true
read -r aws_access_key aws_secret < <("$binary" keys create --data "$data" --tenant "$tenant" \
  --role write --aws 2>>"$work/keys.log") || true
# For the fuzzer's signed requests (see schemathesis_hooks.py).
read -r signed_key signing_secret < <("$binary" keys create --data "$data" --tenant "$tenant" \
  --role write --signed 2>>"$work/keys.log") || true
# For the lake checks (check_lake.py): an admin key of this tenant, a read key of another.
admin_key="$("$binary" keys create --data "$data" --tenant "$tenant" --role admin \
  2>>"$work/keys.log")" || true
other_read_key="$("$binary" keys create --data "$data" --tenant e2e-other --role read \
  2>>"$work/keys.log")" || true
if [[ -z "$write_key" || -z "$aws_access_key" || -z "$aws_secret" || -z "$signing_secret" \
  || -z "$admin_key" || -z "$other_read_key" ]]; then
  fail "keys create: no key printed ($(tail -3 "$work/keys.log"))"
  echo "$passed passed, $failed failed"
  exit 1
fi

# Compaction off: DuckDB globs the directory, and would count a compaction's inputs and output
# both during the grace period (Tributary's SQL reads the catalog's snapshot and never does).
printf '[lake.compaction]\nenabled = false\n' >"$work/e2e.toml"
"$binary" serve --config "$work/e2e.toml" --data "$data" --listen 127.0.0.1:0 \
  >"$work/serve.out" 2>"$work/serve.log" &
server_pid=$!
url=""
for _ in $(seq 1 300); do
  url="$(sed -e 's/\x1b\[[0-9;]*m//g' "$work/serve.log" \
    | grep -o 'listening on http://[0-9.]*:[0-9]*' | head -1 | sed 's/^listening on //')" || true
  [[ -n "$url" ]] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
ready=""
if [[ -n "$url" ]]; then
  for _ in $(seq 1 100); do
    ready="$(http_status "$url/readyz")"
    [[ "$ready" == 200 ]] && break
    sleep 0.1
  done
fi
if [[ "$ready" == 200 ]]; then
  pass "serve listens on $url and /readyz answers 200"
else
  fail "serve did not become ready (url '${url}', /readyz ${ready:-none}); its log:"
  tail -20 "$work/serve.log"
  echo "$passed passed, $failed failed"
  exit 1
fi

# Runs a client with a time bound; its JSON goes to $1, its stderr is shown.
client() {
  local output=$1 label=$2
  shift 2
  if bounded "$client_timeout" "$@" >"$output"; then
    pass "$label"
  else
    local code=$?
    fail "$label: exit $code; it printed:"
    cat "$output"
  fi
}

# --- (a) Segment's analytics-python ------------------------------------------------------------
step "Segment analytics-python"
client "$work/segment-batch.json" "analytics-python, batched by its consumer thread: no client error" \
  "$python" "$here/segment_python.py" --host "$url" --write-key "$write_key"
client "$work/segment-sync.json" "analytics-python, sync_mode and gzip: no client error" \
  "$python" "$here/segment_python.py" --host "$url" --write-key "$write_key" --sync --gzip

# --- (b) boto3 Kinesis -------------------------------------------------------------------------
step "boto3 Kinesis PutRecord / PutRecords"
client "$work/kinesis.json" "boto3 put_record and put_records: accepted, with positions" \
  "$python" "$here/kinesis_boto3.py" --endpoint "$url" --access-key "$aws_access_key" \
  --secret "$aws_secret"

# --- what they sent, in the stream --------------------------------------------------------------
step "the sent events in the stream (check_stream.py)"
stream_args=()
for output in segment-batch segment-sync; do
  [[ -s "$work/$output.json" ]] && stream_args+=(--segment "$work/$output.json")
done
[[ -s "$work/kinesis.json" ]] && stream_args+=(--kinesis "$work/kinesis.json")
set +e
bounded "$client_timeout" "$python" "$here/check_stream.py" --tributary "$binary" --data "$data" \
  --tenant "$tenant" "${stream_args[@]}" >"$work/check_stream.out" 2>&1
stream_code=$?
set -e
# Its per-event lines are checks of this run: add its counts.
grep -v -E '^[0-9]+ passed, [0-9]+ failed$' "$work/check_stream.out" || true
counts="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$work/check_stream.out" | tail -1)" || true
if [[ -n "$counts" ]]; then
  read -r stream_passed _ stream_failed _ <<<"$counts"
  passed=$((passed + stream_passed))
  failed=$((failed + stream_failed))
  if [[ $stream_code -ne 0 && $stream_failed -eq 0 ]]; then
    fail "check_stream.py exited $stream_code"
  fi
else
  fail "check_stream.py exited $stream_code without a count"
fi

# --- the lake, read by Tributary's SQL and by DuckDB ----------------------------------------------
step "the lake: Tributary SQL and DuckDB over the same Parquet (check_lake.py)"
set +e
bounded "$client_timeout" "$python" "$here/check_lake.py" --tributary "$binary" --data "$data" \
  --url "$url" --key "$admin_key" --other-tenant-key "$other_read_key" \
  >"$work/check_lake.out" 2>&1
lake_code=$?
set -e
grep -v -E '^[0-9]+ passed, [0-9]+ failed$' "$work/check_lake.out" || true
counts="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$work/check_lake.out" | tail -1)" || true
if [[ -n "$counts" ]]; then
  read -r lake_passed _ lake_failed _ <<<"$counts"
  passed=$((passed + lake_passed))
  failed=$((failed + lake_failed))
  if [[ $lake_code -ne 0 && $lake_failed -eq 0 ]]; then
    fail "check_lake.py exited $lake_code"
  fi
else
  fail "check_lake.py exited $lake_code without a count"
fi

# --- (c) schemathesis --------------------------------------------------------------------------
step "schemathesis: every operation of $url/openapi.json, $max_examples examples each"
seed_args=()
[[ -n "$seed" ]] && seed_args=(--seed "$seed")
started=$SECONDS
set +e
TRIBUTARY_E2E_WRITE_KEY="$write_key" TRIBUTARY_E2E_READ_KEY="$other_read_key" \
  TRIBUTARY_E2E_SIGNED_KEY="$signed_key" TRIBUTARY_E2E_SIGNING_SECRET="$signing_secret" \
  TRIBUTARY_E2E_AWS_ACCESS_KEY="$aws_access_key" TRIBUTARY_E2E_AWS_SECRET="$aws_secret" \
  SCHEMATHESIS_HOOKS="$here/schemathesis_hooks.py" \
  bounded "$fuzz_timeout" "$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" \
  run "$url/openapi.json" --max-examples "$max_examples" "${seed_args[@]}" \
  --generation-database none --no-color --report junit --report-dir "$work/schemathesis-report" \
  >"$work/schemathesis.log" 2>&1
fuzz_code=$?
set -e
elapsed=$((SECONDS - started))
summary="$(grep -E '^ *[0-9]+ generated|^Seed:' "$work/schemathesis.log" | sed 's/^ *//' \
  | paste -sd ';' - | sed 's/;/; /g')" || true
if [[ $fuzz_code -eq 0 ]]; then
  pass "schemathesis: no 5xx, no dropped connection, answers as documented (${elapsed} s; ${summary})"
elif [[ $fuzz_code -eq 124 || $fuzz_code -eq 137 ]]; then
  fail "schemathesis did not finish within ${fuzz_timeout} s; its output:"
  cat "$work/schemathesis.log"
else
  fail "schemathesis found problems (exit $fuzz_code, ${elapsed} s); its report:"
  cat "$work/schemathesis.log"
fi

step "the server after fuzzing"
# For whoever reads a failure: what the fuzzer's requests were answered, by API and status.
"$python" - "$url/metrics" >"$work/metrics.txt" 2>&1 <<'EOF' || true
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
EOF
if kill -0 "$server_pid" 2>/dev/null; then
  pass "the server process is alive"
else
  fail "the server process is gone; the end of its log:"
  tail -30 "$work/serve.log"
fi
healthz="$(http_status "$url/healthz")"
if [[ "$healthz" == 200 ]]; then
  pass "/healthz answers 200"
else
  fail "/healthz answers $healthz"
fi
if grep -q -E 'panicked|ERROR' "$work/serve.log"; then
  fail "the server logged a panic or an error:"
  grep -E -A5 'panicked|ERROR' "$work/serve.log" | head -40
else
  pass "the server logged no panic and no error"
fi

# --- shutdown -----------------------------------------------------------------------------------
step "shutdown"
if ! kill -0 "$server_pid" 2>/dev/null; then
  set +e
  wait "$server_pid"
  serve_code=$?
  set -e
  fail "the server had exited (code $serve_code) before SIGTERM"
else
  kill -TERM "$server_pid" 2>/dev/null || true
  stopped=""
  for _ in $(seq 1 300); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      stopped=1
      break
    fi
    sleep 0.1
  done
  if [[ -z "$stopped" ]]; then
    fail "SIGTERM did not stop the server within 30 s; killing it"
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  else
    set +e
    wait "$server_pid"
    serve_code=$?
    set -e
    if [[ $serve_code -eq 0 ]]; then
      pass "SIGTERM stops the server with exit 0"
    else
      fail "the server exited $serve_code after SIGTERM; the end of its log:"
      tail -20 "$work/serve.log"
    fi
  fi
fi
server_pid=""

if "$binary" stream verify --json --data "$data" >"$work/verify.json" 2>>"$work/verify.log" \
  && "$python" -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1]))["ok"] else 1)' \
    "$work/verify.json"; then
  pass "stream verify: no damage ($(cut -c1-200 "$work/verify.json"))"
else
  fail "stream verify found damage or failed: $(cat "$work/verify.json" "$work/verify.log")"
fi

echo
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
