#!/usr/bin/env bash
# Mutation check for crates/moe-core/tests/reference_parity.rs: builds moe-core with the planted
# bug `planted-bug-no-residual` (MoeBlock::forward drops the residual x + y, in every strategy)
# and runs the reference parity test. Exits 0 only if the test FAILS on the mutant (it caught the
# bug), 1 if it passes (it no longer would), 2 if it could not be built or run.
#
#   scripts/moe-mutant.sh            # CARGO_TARGET_DIR and CANDLE_REPRO_DEVICE are honoured
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Build first, so a compile error is not mistaken for a caught mutant.
if ! cargo test -q -p moe-core --features planted-bug-no-residual --test reference_parity --no-run >"$log" 2>&1; then
  cat "$log" >&2
  echo "moe-mutant: could not build the mutant (planted-bug-no-residual)" >&2
  exit 2
fi
cargo test -q -p moe-core --features planted-bug-no-residual --test reference_parity >"$log" 2>&1
rc=$?
summary=$(grep -E '^test result:' "$log" | tail -1)
if [ "$rc" -eq 101 ] && grep -q 'differs from the reference' "$log"; then
  echo "moe-mutant: ok, reference_parity caught the dropped residual (${summary#test result: }); first: $(grep -m1 'differs from the reference' "$log")"
  exit 0
elif [ "$rc" -eq 0 ]; then
  echo "moe-mutant: FAIL, reference_parity passes with the residual dropped ($summary)"
  exit 1
else
  cat "$log" >&2
  echo "moe-mutant: the test run failed for another reason (exit $rc), not by catching the mutant" >&2
  exit 2
fi
