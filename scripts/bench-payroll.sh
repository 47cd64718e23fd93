#!/usr/bin/env bash
# Payroll benchmark: a LINES-line CSV (default 1,000,000) submitted to `railgate serve` with the
# generic mock rail, on each store. Measures the accept time (upload, validation, storage),
# the end-to-end time until every item is final through the mock rail, and the gateway's peak
# RSS (VmHWM). Prints one Markdown table row per store.
#
#   scripts/bench-payroll.sh                       # 1,000,000 lines, both stores, end to end
#   LINES=100000 STORES=sqlite scripts/bench-payroll.sh
#   MODE=accept scripts/bench-payroll.sh            # accept only (the payroll is held)
#   BATCH=true scripts/bench-payroll.sh             # through the mock rail's batch API
#                                                   # (BATCH_CHUNK lines per upload, default 5000)
#
# LOGS=DIR keeps the gateway's and the mock rail's logs of each store there.
# PostgreSQL: PG_URL (default postgres://postgres@127.0.0.1:5432/test); each run gets a schema
# of its own.
set -euo pipefail
cd "$(dirname "$0")/.."

LINES="${LINES:-1000000}"
STORES="${STORES:-sqlite postgres}"
MODE="${MODE:-full}"
BATCH="${BATCH:-false}"
BATCH_CHUNK="${BATCH_CHUNK:-5000}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
WORK="$(mktemp -d)"
BIN=target/release/railgate
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --release -p railgate -p railgate-bench >&2  # the same build as bench/run.sh

# Payees end in 00 or 42: the mock rail's plain success (a callback within ~100 ms).
awk -v n="$LINES" 'BEGIN {
  print "Code,Amount,phone_number,First Name,Last Name";
  for (i = 0; i < n; i++) {
    printf "BENCH-%08d,%d.%02d,2557%06d%s,Asha,Juma\n", i, 1000 + i % 5000, i % 100, i % 1000000, (i % 2 ? "00" : "42");
  }
}' > "$WORK/payroll.csv"
echo "file: $LINES lines, $(du -h "$WORK/payroll.csv" | cut -f1)" >&2

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_ready() {
  for _ in $(seq 1 300); do
    curl -fs "$1/readyz" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "the gateway did not become ready" >&2
  return 1
}

echo "| store | lines | batches | accept | end to end | peak RSS |"
echo "|---|---|---|---|---|---|"
for store in $STORES; do
  mock_port="$(free_port)"
  port="$(free_port)"
  case "$store" in
    sqlite) db="sqlite://$WORK/bench-$store.db" ;;
    postgres)
      schema="bench_$(date +%s)_$$"
      psql "$PG_URL" -qc "CREATE SCHEMA $schema" >&2
      db="${PG_URL}?options=-c%20search_path%3D${schema}"
      ;;
    *) echo "unknown store $store" >&2; exit 1 ;;
  esac
  cat > "$WORK/$store.toml" <<EOF
listen = "127.0.0.1:$port"
database_url = "$db"
db_connections = 16

[dispatch]
batch = 256
max_in_flight = 256

[[rails]]
id = "mock"
kind = "mock"
base_url = "http://127.0.0.1:$mock_port"
callback_secret_env = "BENCH_MOCK_SECRET"
concurrency = 256
batch = $BATCH
batch_chunk = $BATCH_CHUNK
batch_poll_ms = 500
callback_grace_ms = 60000
deadline_secs = 3600

[[routes]]
rail = "mock"
EOF
  export BENCH_MOCK_SECRET="bench-secret-$$"
  unset DATABASE_URL
  "$BIN" mock-rail --port "$mock_port" --secret "$BENCH_MOCK_SECRET" >"$WORK/mock-$store.log" 2>&1 &
  PIDS+=($!)
  "$BIN" migrate -c "$WORK/$store.toml" >&2
  key="$("$BIN" keys -c "$WORK/$store.toml" create --client bench --scopes payments:write,payments:read | sed -n 's/^API key: //p')"
  RUST_LOG="${RUST_LOG:-warn,railgate::api::payrolls=info}" "$BIN" serve -c "$WORK/$store.toml" >"$WORK/serve-$store.log" 2>&1 &
  gw=$!
  PIDS+=("$gw")
  wait_ready "http://127.0.0.1:$port"
  hold=()
  [ "$MODE" = accept ] && hold=(--hold)
  start=$(date +%s.%N)
  "$BIN" payroll submit "$WORK/payroll.csv" --url "http://127.0.0.1:$port" --key "$key" --currency TZS "${hold[@]}" \
    2>/dev/null | tee "$WORK/submit-$store.out" >&2
  end=$(date +%s.%N)
  accept="$(sed -n 's/.* accepted in \([^ ]*\) .*/\1/p' "$WORK/submit-$store.out")"
  e2e="-"
  [ "$MODE" = full ] && e2e="$(python3 -c "print(f'{$end - $start:.1f}s')")"
  rss="$(awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' "/proc/$gw/status")"
  echo "| $store | $LINES | $BATCH | $accept | $e2e | $rss |"
  grep -h "Payroll file read\|Payroll stored" "$WORK/serve-$store.log" >&2 || true
  kill "$gw" 2>/dev/null || true
  wait "$gw" 2>/dev/null || true
  if [ -n "${LOGS:-}" ]; then
    mkdir -p "$LOGS"
    cp "$WORK/serve-$store.log" "$WORK/mock-$store.log" "$LOGS/"
  fi
  if [ "$store" = postgres ]; then psql "$PG_URL" -qc "DROP SCHEMA $schema CASCADE" 2>/dev/null || true; fi
  rm -f "$WORK/bench-$store.db"*
done
