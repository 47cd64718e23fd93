#!/usr/bin/env bash
# Reproduces the figures in BENCHMARKS.md on this machine, in one run:
#   1. pgbench tpcb-like (scale 10, 16 clients, 20 s) against the local PostgreSQL, as the
#      yardstick of what this machine's database can commit;
#   2. for SQLite and for PostgreSQL, the release `railgate serve`:
#      a. dispatcher off: payments created per second and p50/p99 latency of the API
#         (closed loop: each client sends its next request when its last is answered);
#      b. dispatcher off, open loop: a fixed rate offered (default 1,000 requests/s for 20 s),
#         each request sent when due and its latency measured from when it was due;
#      c. dispatcher on, a standalone mock rail: disbursements completed per second
#         end to end (API -> rail over HTTP -> signed callback -> completed), and the write
#         transactions per completed payment (the gateway's railgate_write_transactions_total;
#         on PostgreSQL also pg_stat_database's xact_commit, reads included).
# Each phase starts on a fresh database. Everything listens on loopback.
#
# Usage: bench/run.sh            (results also in target/bench/results.txt)
# Knobs: BENCH_PG (server URL without database, default postgres://postgres@127.0.0.1:5432),
#        BENCH_COUNT (payments for the API run, default 5000),
#        BENCH_E2E_COUNT (payments for the end-to-end run, default 10000: some 7 s of
#        steady flow, against the ~0.3 s a payment takes end to end),
#        BENCH_CLIENTS (concurrent clients of the driver, default 32),
#        BENCH_RATE (requests/s offered in the open loop, default 1000),
#        BENCH_OPEN_SECONDS (how long the open loop offers it, default 20),
#        BENCH_OPEN_DISPATCH=true to run the open loop with the dispatcher on (default off),
#        BENCH_OPEN=0 to leave the open loop out,
#        BENCH_SQLITE_CONNECTIONS / BENCH_PG_CONNECTIONS (gateway pool sizes, 4 / 16),
#        BENCH_PGBENCH=0 to leave pgbench out.
set -euo pipefail
cd "$(dirname "$0")/.."

PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
COUNT="${BENCH_COUNT:-5000}"
E2E_COUNT="${BENCH_E2E_COUNT:-10000}"
CLIENTS="${BENCH_CLIENTS:-32}"
RATE="${BENCH_RATE:-1000}"
OPEN_SECONDS="${BENCH_OPEN_SECONDS:-20}"
OPEN_DISPATCH="${BENCH_OPEN_DISPATCH:-false}"
# SQLite has one writer: more connections only queue in its busy handler (which sleeps).
SQLITE_CONNS="${BENCH_SQLITE_CONNECTIONS:-4}"
PG_CONNS="${BENCH_PG_CONNECTIONS:-16}"
OUT=target/bench
# Database names of this run's own, so that two runs on one server never drop each other's.
DB="railgate_bench_$$"
mkdir -p "$OUT"
RESULTS="$OUT/results.txt"
: > "$RESULTS"
# The configuration files alone decide where the gateway listens and what it stores in.
unset DATABASE_URL RAILGATE_CONFIG RAILGATE_LISTEN RAILGATE_PUBLIC_URL RAILGATE_DISPATCH

say() { echo "$*" | tee -a "$RESULTS"; }

PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

WORK=$(mktemp -d)
say "# railgate benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
say "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
say "postgres: $(psql "$PG/postgres" -Atc 'SHOW server_version') (synchronous_commit=$(psql "$PG/postgres" -Atc 'SHOW synchronous_commit'), fsync=$(psql "$PG/postgres" -Atc 'SHOW fsync'))"
say "sqlite: WAL, synchronous=FULL (the gateway's settings)"

cargo build --release -p railgate -p railgate-bench
BIN=target/release/railgate
LOAD=target/release/railgate-load

# ---- pgbench -------------------------------------------------------------------------------
PGBENCH=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -1 || true)
if [ -z "$PGBENCH" ]; then
    apt-get install -y postgresql-contrib >/dev/null
    PGBENCH=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | tail -1)
fi
fresh_db() {
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null
}
if [ "${BENCH_PGBENCH:-1}" != 0 ]; then
fresh_db "${DB}_pgbench"
"$PGBENCH" -i -s 10 -q "$PG/${DB}_pgbench" >"$OUT/pgbench-init.log" 2>&1
"$PGBENCH" -b tpcb-like -c 16 -j 2 -T 20 "$PG/${DB}_pgbench" >"$OUT/pgbench.log" 2>&1
say "pgbench tpcb-like, scale 10, 16 clients, 20 s: $(grep -E '^tps' "$OUT/pgbench.log" | head -1)"
say "pgbench latency: $(grep -E '^latency average' "$OUT/pgbench.log")"
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS ${DB}_pgbench" >/dev/null
fi

# ---- the gateway ---------------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() {
    for _ in $(seq 1 300); do
        curl -fs "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "gateway on port $1 did not become ready" >&2
    return 1
}

export RAILGATE_BENCH_SECRET
RAILGATE_BENCH_SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
MOCK_PORT=$(free_port)
"$BIN" mock-rail --port "$MOCK_PORT" --secret "$RAILGATE_BENCH_SECRET" >"$OUT/mock.log" 2>&1 &
PIDS+=($!)

config() { # port database_url connections
    cat <<EOF
listen = "127.0.0.1:$1"
database_url = "$2"
db_connections = $3

[[rails]]
id = "mock"
kind = "mock"
base_url = "http://127.0.0.1:$MOCK_PORT"
callback_secret_env = "RAILGATE_BENCH_SECRET"
concurrency = 64
request_timeout_ms = 5000
callback_grace_ms = 10000

[[routes]]
rail = "mock"
EOF
}

# A PostgreSQL database's committed transactions so far (reads included).
xact_commits() {
    psql "$PG/postgres" -Atc "SELECT xact_commit FROM pg_stat_database WHERE datname = '$1'"
}

# phase store mode database_url dispatch count
phase() {
    local store=$1 mode=$2 url=$3 dispatch=$4 count=$5
    local port cfg key pid drv xact_before="" completed
    port=$(free_port)
    cfg="$WORK/$store-$mode.toml"
    drv="$OUT/load-$store-$mode.txt"
    local conns=$PG_CONNS
    [ "$store" = sqlite ] && conns=$SQLITE_CONNS
    config "$port" "$url" "$conns" >"$cfg"
    key=$("$BIN" keys --config "$cfg" create --client bench | sed -n 's/^API key: //p')
    # From before the gateway starts to after it stops: every backend's count is in by then.
    if [ "$store" = postgres ] && [ "$mode" = e2e ]; then
        xact_before=$(xact_commits "${url##*/}")
    fi
    RAILGATE_DISPATCH=$dispatch "$BIN" serve --config "$cfg" >"$OUT/$store-$mode.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_ready "$port"
    say ""
    local load=(--base-url "http://127.0.0.1:$port" --api-key "$key" --mode "$mode")
    if [ "$mode" = open-loop ]; then
        say "## $store, $mode (dispatcher $([ "$dispatch" = true ] && echo on || echo off)), $RATE requests/s offered for $OPEN_SECONDS s, $conns database connections"
        load+=(--rate "$RATE" --duration-seconds "$OPEN_SECONDS")
    else
        say "## $store, $mode (dispatcher $([ "$dispatch" = true ] && echo on || echo off)), $count payments, $CLIENTS clients, $conns database connections"
        load+=(--count "$count" --concurrency "$CLIENTS" --max-seconds 120)
    fi
    : >"$drv"
    "$LOAD" "${load[@]}" | tee -a "$RESULTS" "$drv"
    kill -TERM "$pid"
    wait "$pid" || true
    if [ -n "$xact_before" ]; then
        sleep 1
        completed=$(sed -n 's/^completed: \([0-9]*\) in .*/\1/p' "$drv")
        awk -v a="$xact_before" -v b="$(xact_commits "${url##*/}")" -v n="${completed:-0}" 'BEGIN {
            d = b - a
            if (n > 0) printf "pg_stat_database xact_commit per completed payment (reads included): %.2f (%d commits over %d completed, from before the gateway started to after it stopped: the driver'"'"'s polls and the gateway'"'"'s idle reads count too)\n", d / n, d, n
            else print "pg_stat_database xact_commit per completed payment (reads included): n/a (no payment completed)"
        }' | tee -a "$RESULTS"
    fi
}

phase sqlite create "sqlite://$WORK/create.db" false "$COUNT"
if [ "${BENCH_OPEN:-1}" != 0 ]; then
    phase sqlite open-loop "sqlite://$WORK/open-loop.db" "$OPEN_DISPATCH" 0
fi
phase sqlite e2e "sqlite://$WORK/e2e.db" true "$E2E_COUNT"
fresh_db "${DB}_create"
phase postgres create "$PG/${DB}_create" false "$COUNT"
if [ "${BENCH_OPEN:-1}" != 0 ]; then
    fresh_db "${DB}_open"
    phase postgres open-loop "$PG/${DB}_open" "$OPEN_DISPATCH" 0
fi
fresh_db "${DB}_e2e"
phase postgres e2e "$PG/${DB}_e2e" true "$E2E_COUNT"
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS ${DB}_create" -c "DROP DATABASE IF EXISTS ${DB}_open" \
    -c "DROP DATABASE IF EXISTS ${DB}_e2e" >/dev/null
rm -rf "$WORK"
say ""
say "results in $RESULTS"
