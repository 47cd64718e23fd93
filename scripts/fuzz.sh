#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets/) for SECONDS each (default 600), one after the
# other, on the committed corpus in fuzz/corpus/<target>/. Fails if any target crashes, hangs
# (an input taking more than 10 s) or runs out of memory (2 GiB); the input that did it is
# left in fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh            # ten minutes per target
#   scripts/fuzz.sh 20         # a short run (CI)
#   scripts/fuzz.sh 60 camt    # some targets only
#
# New inputs go to a scratch directory; with FUZZ_MERGE=1 the ones that add coverage are
# merged into the committed corpus afterwards. Needs the nightly toolchain; installs
# cargo-fuzz when it is missing.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-600}"
shift || true
toolchain="${FUZZ_TOOLCHAIN:-nightly}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(cargo "+$toolchain" fuzz list)
fi

cargo "+$toolchain" fuzz build

dict_for() {
  case "$1" in
    camt | pain002) echo "-dict=dict/xml.dict" ;;
    fspiop | mmapi_callback | daraja_callback | phee_batch | payroll_json) echo "-dict=dict/json.dict" ;;
    *) echo "" ;;
  esac
}

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "$scratch/$t" "artifacts/$t"
  echo "== $t: ${seconds}s"
  # shellcheck disable=SC2046
  if ! cargo "+$toolchain" fuzz run "$t" "$scratch/$t" "corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    $(dict_for "$t") 2>"$scratch/$t.log"; then
    failed+=("$t")
  fi
  grep -E '^#[0-9]+[[:space:]]+DONE|^stat::number_of_executed_units|^stat::peak_rss_mb' "$scratch/$t.log" || true
  if grep -qE '^==[0-9]+== ERROR|panicked at|deadly signal|ALARM|out-of-memory' "$scratch/$t.log"; then
    tail -n 40 "$scratch/$t.log"
    [[ " ${failed[*]} " == *" $t "* ]] || failed+=("$t")
  fi
  if [ "${FUZZ_MERGE:-0}" = 1 ]; then
    cargo "+$toolchain" fuzz run "$t" "corpus/$t" "$scratch/$t" -- -merge=1 2>/dev/null
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzzing found crashes or hangs in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzzing: ${#targets[@]} targets, ${seconds}s each, no crash, no hang"
