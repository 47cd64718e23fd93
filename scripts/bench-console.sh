#!/usr/bin/env bash
# How long the operations console's main pages take on a store of a million payments.
#
#   scripts/bench-console.sh                       # 1,000,000 payments, SQLite then PostgreSQL
#   PAYMENTS=100000 STORES=postgres scripts/bench-console.sh
#
# For each store: a fresh database, `railgate migrate`, two clients' keys, then PAYMENTS
# payments inserted by SQL (set-up, not measured: nine in ten of the first client, spread over
# 23 days, every state, three rails, four programmes, 200,000 payees, two history rows each),
# then a release `railgate serve` (dispatcher off) and each page asked three times with HTTP
# Basic, timed by curl (total time, loopback). Results in target/bench-console/results.txt.
# PostgreSQL at PG_URL (a server URL, default postgres://postgres@127.0.0.1:5432).
set -euo pipefail
cd "$(dirname "$0")/.."

N="${PAYMENTS:-1000000}"
STORES="${STORES:-sqlite postgres}"
PG="${PG_URL:-postgres://postgres@127.0.0.1:5432}"
OUT=target/bench-console
DB="railgate_console_$$"
mkdir -p "$OUT"
RESULTS="$OUT/results.txt"
: >"$RESULTS"
unset DATABASE_URL RAILGATE_CONFIG RAILGATE_LISTEN RAILGATE_PUBLIC_URL
say() { echo "$*" | tee -a "$RESULTS"; }

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

cargo build --release -p railgate -p railgate-bench  # the same build as bench/run.sh
BIN=target/release/railgate
WORK=$(mktemp -d)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The seed, in each store's SQL. Ids are UUIDv7 text made from the creation time (the order
# the console pages by); payee i % 200,000; the metadata names the programme.
DAY_US=86400000000
START_US=$(( ($(date +%s) - 23 * 86400) * 1000000 ))
STEP_US=$(( 23 * DAY_US / N ))

seed_sqlite() { # file client other
    sqlite3 "$1" <<SQL
PRAGMA journal_mode=WAL;
PRAGMA synchronous=OFF;
BEGIN;
CREATE TEMP TABLE g AS
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $N)
SELECT i, $START_US + i * $STEP_US AS us,
       printf('%08x-%04x-7%03x-8%03x-%012x', ($START_US + i * $STEP_US) / 1000 / 65536,
              (($START_US + i * $STEP_US) / 1000) % 65536, (i / 4096) % 4096, i % 4096, i) AS id
FROM s;
INSERT INTO payments (id, client_id, direction, mode, state, reference, amount_minor, currency,
    party_type, party_value, party_name, narrative, rail, metadata, payment_reference,
    failure_code, failure_reason, failure_rail_code, receipt, rail_reference, exception,
    conflict, payroll_id, created_at, updated_at)
SELECT id, CASE WHEN i % 10 = 0 THEN '$3' ELSE '$2' END, 'disbursement', NULL,
    CASE i % 8 WHEN 0 THEN 'failed' WHEN 1 THEN 'pending' WHEN 2 THEN 'unknown' WHEN 3 THEN 'queued'
         ELSE 'completed' END,
    'ref-' || i, 1000 + (i % 5000) * 100, 'TZS', 'MSISDN', printf('2557%08d', i % 200000),
    NULL, NULL, CASE i % 3 WHEN 0 THEN 'mock' WHEN 1 THEN 'mpesa' ELSE 'mojaloop' END,
    '{"programme":"p' || (i % 4) || '"}', NULL,
    CASE WHEN i % 8 = 0 THEN 'party_not_found' END, CASE WHEN i % 8 = 0 THEN 'no such wallet' END, NULL,
    CASE WHEN i % 8 >= 4 THEN 'R' || i END, NULL,
    CASE WHEN i % 16 = 2 THEN 'no answer from the rail' END, NULL, NULL, us, us + 5000000
FROM g;
INSERT INTO payment_transitions (payment_id, seq, from_state, to_state, cause, at, client_id)
SELECT id, 1, NULL, 'received', 'api', us, CASE WHEN i % 10 = 0 THEN '$3' ELSE '$2' END FROM g;
INSERT INTO payment_transitions (payment_id, seq, from_state, to_state, cause, at, client_id)
SELECT id, 2, 'received', 'queued', 'routed', us, CASE WHEN i % 10 = 0 THEN '$3' ELSE '$2' END FROM g;
COMMIT;
ANALYZE;
SQL
}

seed_postgres() { # url client other
    psql -q -v ON_ERROR_STOP=1 "$1" <<SQL
CREATE TEMP TABLE g AS
SELECT i, $START_US::bigint + i * $STEP_US::bigint AS us,
       lpad(to_hex(($START_US::bigint + i * $STEP_US::bigint) / 1000), 12, '0') AS h
FROM generate_series(1, $N) i;
INSERT INTO payments (id, client_id, direction, mode, state, reference, amount_minor, currency,
    party_type, party_value, party_name, narrative, rail, metadata, payment_reference,
    failure_code, failure_reason, failure_rail_code, receipt, rail_reference, exception,
    conflict, payroll_id, created_at, updated_at)
SELECT substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-7' || lpad(to_hex((i / 4096) % 4096), 3, '0')
       || '-8' || lpad(to_hex(i % 4096), 3, '0') || '-' || lpad(to_hex(i), 12, '0'),
    CASE WHEN i % 10 = 0 THEN '$3' ELSE '$2' END, 'disbursement', NULL,
    CASE i % 8 WHEN 0 THEN 'failed' WHEN 1 THEN 'pending' WHEN 2 THEN 'unknown' WHEN 3 THEN 'queued'
         ELSE 'completed' END,
    'ref-' || i, 1000 + (i % 5000) * 100, 'TZS', 'MSISDN', '2557' || lpad((i % 200000)::text, 8, '0'),
    NULL, NULL, CASE i % 3 WHEN 0 THEN 'mock' WHEN 1 THEN 'mpesa' ELSE 'mojaloop' END,
    '{"programme":"p' || (i % 4) || '"}', NULL,
    CASE WHEN i % 8 = 0 THEN 'party_not_found' END, CASE WHEN i % 8 = 0 THEN 'no such wallet' END, NULL,
    CASE WHEN i % 8 >= 4 THEN 'R' || i END, NULL,
    CASE WHEN i % 16 = 2 THEN 'no answer from the rail' END, NULL, NULL, us, us + 5000000
FROM g;
INSERT INTO payment_transitions (payment_id, seq, from_state, to_state, cause, at, client_id)
SELECT p.id, s.seq, s.f, s.t, s.c, p.created_at, p.client_id
FROM payments p, (VALUES (1, NULL, 'received', 'api'), (2, 'received', 'queued', 'routed')) s(seq, f, t, c);
ANALYZE;
SQL
}

page() { # label port key [curl arguments...]
    local label=$1 port=$2 key=$3 t times=()
    shift 3
    for _ in 1 2 3; do
        t=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -u "any:$key" "$@" \
            | awk -v l="$label" '$1 != 200 { print "HTTP " $1 " for " l > "/dev/stderr"; exit 1 } { print $2 }')
        times+=("$t")
    done
    say "| $label | ${times[0]}, ${times[1]}, ${times[2]} |"
}

run_store() {
    local store=$1 url port cfg key other client pid csrf day one
    port=$(free_port)
    case $store in
    sqlite) url="sqlite://$WORK/console.db" ;;
    postgres)
        psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
        url="$PG/$DB"
        ;;
    esac
    cfg="$WORK/$store.toml"
    printf 'listen = "127.0.0.1:%s"\ndatabase_url = "%s"\n' "$port" "$url" >"$cfg"
    "$BIN" migrate --config "$cfg" >/dev/null
    key=$("$BIN" keys --config "$cfg" create --client acme --scopes admin | sed -n 's/^API key: //p')
    "$BIN" keys --config "$cfg" create --client other >/dev/null
    local q="SELECT id FROM clients WHERE name = "
    case $store in
    sqlite)
        client=$(sqlite3 "$WORK/console.db" "$q'acme'")
        other=$(sqlite3 "$WORK/console.db" "$q'other'")
        ;;
    postgres)
        client=$(psql -Atc "$q'acme'" "$url")
        other=$(psql -Atc "$q'other'" "$url")
        ;;
    esac
    local t0=$SECONDS
    case $store in
    sqlite) seed_sqlite "$WORK/console.db" "$client" "$other" ;;
    postgres) seed_postgres "$url" "$client" "$other" ;;
    esac
    echo "seeded $N payments in $((SECONDS - t0)) s" >&2

    RAILGATE_DISPATCH=false "$BIN" serve --config "$cfg" >"$OUT/$store.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 300); do
        curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    # The console's form token: SHA-256 of "railgate-console-form", a zero byte and the key.
    csrf=$(printf 'railgate-console-form\0%s' "$key" | sha256sum | cut -d' ' -f1)
    day=$(date -u -d "@$(( (START_US + 12 * DAY_US) / 1000000 ))" +%F)
    one=$(curl -s -u "any:$key" "http://127.0.0.1:$port/reports/payments" \
        | grep -o '/reports/payments/[0-9a-f-]\{36\}' | head -1)
    local base="http://127.0.0.1:$port"
    say ""
    say "## $store, $N payments (release build)"
    say ""
    say "| Page | Times (s) |"
    say "| --- | --- |"
    page '`GET /reports/payments` (the newest 50)' "$port" "$key" "$base/reports/payments"
    page 'search by payee' "$port" "$key" "$base/reports/payments" \
        --data-urlencode "csrf=$csrf" --data-urlencode "payee=255700012345"
    page 'search by state and one day' "$port" "$key" "$base/reports/payments" \
        --data-urlencode "csrf=$csrf" --data-urlencode "state=unknown" \
        --data-urlencode "from=$day" --data-urlencode "to=$day"
    page 'search by programme and state' "$port" "$key" "$base/reports/payments" \
        --data-urlencode "csrf=$csrf" --data-urlencode "programme=p2" --data-urlencode "state=unknown"
    page 'search by reference' "$port" "$key" "$base/reports/payments" \
        --data-urlencode "csrf=$csrf" --data-urlencode "reference=ref-777777"
    page "one payment's page" "$port" "$key" "$base$one"
    page '`GET /reports/payrolls`' "$port" "$key" "$base/reports/payrolls"
    page '`GET /reports/audit`' "$port" "$key" "$base/reports/audit"
    page '`GET /reports/statements`' "$port" "$key" "$base/reports/statements"
    page '`GET /reports/exceptions`' "$port" "$key" "$base/reports/exceptions"
    page "\`GET /reports\` for one day (the report and its pictures)" "$port" "$key" \
        "$base/reports?from=$day&to=$day"
    page 'the same report alone (`/reports/download?format=json`)' "$port" "$key" \
        "$base/reports/download?from=$day&to=$day&format=json"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    [ "$store" = postgres ] && psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB" >/dev/null
    return 0
}

say "# console pages, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
for s in $STORES; do run_store "$s"; done
rm -rf "$WORK"
