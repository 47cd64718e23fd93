#!/usr/bin/env bash
# The payroll benchmark through the generic mock rail's batch API (POST /v1/batches): the same
# LINES-line CSV, end to end, on each store. Options as scripts/bench-payroll.sh, plus
# BATCH_CHUNK (lines per upload, default 5000).
#
#   scripts/bench-payroll-batches.sh                          # 1,000,000 lines, both stores
#   LINES=100000 STORES=sqlite scripts/bench-payroll-batches.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BATCH=true exec scripts/bench-payroll.sh "$@"
