#!/usr/bin/env bash
# The crash test at full scale (tests/crash.rs): the release `railgate serve` killed with
# SIGKILL 20 times during a 10,000-payment run, restarted each time, on SQLite and then on
# PostgreSQL. It passes when no payment is lost, none was paid twice, every payment is final
# or an operator exception, and the ledger's trial balance is zero. Nothing in it is timed;
# each store's run prints its kills, its tally of outcomes by scenario and its elapsed time.
#
# Usage: scripts/crash-run.sh            (logs in target/crash/<store>.log)
# Knobs: PAYMENTS (default 10000), KILLS (default 20, at least 5),
#        STORES (default "sqlite postgres"),
#        DATABASE_URL (PostgreSQL server, default postgres://postgres@127.0.0.1:5432/test;
#        each run makes a schema of its own there and drops it when it passes).
set -euo pipefail
cd "$(dirname "$0")/.."

export RAILGATE_CRASH_PAYMENTS="${PAYMENTS:-10000}"
export RAILGATE_CRASH_KILLS="${KILLS:-20}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
# An unreachable PostgreSQL is a failure here, not a skipped test.
export CI=true
STORES="${STORES:-sqlite postgres}"
OUT=target/crash
mkdir -p "$OUT"

cargo test --release --test crash --no-run
status=0
for store in $STORES; do
    case "$store" in
        sqlite | postgres) ;;
        *)
            echo "unknown store: $store (sqlite or postgres)" >&2
            exit 2
            ;;
    esac
    echo "## $store: $RAILGATE_CRASH_PAYMENTS payments, $RAILGATE_CRASH_KILLS kills, release build"
    start=$(date +%s)
    if cargo test --release --test crash -- --exact "kill_9_and_restart_on_$store" --nocapture \
        2>&1 | tee "$OUT/$store.log"; then
        echo "## $store: passed in $(($(date +%s) - start)) s"
    else
        echo "## $store: FAILED after $(($(date +%s) - start)) s (log: $OUT/$store.log)"
        status=1
    fi
done
exit "$status"
