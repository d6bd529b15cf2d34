#!/usr/bin/env bash
# The "green under load" check of issue #15: run CI (`.ci/run`) RUNS times in a row while HOGS busy loops keep the
# CPUs saturated. Every run must pass; a failure stops the loop. Logs go to var/ci-under-load/run-<n>.log.
#   bash scripts/ci_under_load.sh            # 3 runs, 2 busy loops
#   RUNS=1 HOGS=4 bash scripts/ci_under_load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
HOGS=${HOGS:-2}
mkdir -p var/ci-under-load
hogs=()
stop_hogs() { for pid in "${hogs[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap stop_hogs EXIT
for _ in $(seq "$HOGS"); do
  # stress-ng is not on a fresh machine; a shell busy loop loads one CPU just as well.
  ( while :; do :; done ) &
  hogs+=("$!")
done
for run in $(seq "$RUNS"); do
  started=$(date +%s)
  if bash .ci/run >"var/ci-under-load/run-$run.log" 2>&1; then
    echo "run $run of $RUNS: passed in $(( $(date +%s) - started )) s ($HOGS busy loops)"
  else
    echo "run $run of $RUNS: FAILED after $(( $(date +%s) - started )) s, see var/ci-under-load/run-$run.log"
    exit 1
  fi
done
echo "ci under load: $RUNS of $RUNS runs passed"
