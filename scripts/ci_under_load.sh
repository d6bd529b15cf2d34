#!/usr/bin/env bash
# The "green under load" check of issue #15: run CI (`.ci/run`) RUNS times in a row while HOGS busy loops keep the
# CPUs saturated. Every run starts from a fresh clone of the commit that was HEAD when the check began (as CI does),
# so commits made meanwhile do not change what is tested. Every run must pass; a failure stops the loop.
# Logs go to var/ci-under-load/run-<n>.log, the clones to $CI_LOAD_DIR (default /tmp/smartpost-ci-under-load).
#   bash scripts/ci_under_load.sh            # 3 runs, 2 busy loops
#   RUNS=1 HOGS=4 bash scripts/ci_under_load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
HOGS=${HOGS:-2}
CI_LOAD_DIR=${CI_LOAD_DIR:-/tmp/smartpost-ci-under-load}
repo=$(pwd)
commit=$(git rev-parse HEAD)
mkdir -p var/ci-under-load "$CI_LOAD_DIR"
logs="$repo/var/ci-under-load"
hogs=()
stop_hogs() { for pid in "${hogs[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap stop_hogs EXIT
for _ in $(seq "$HOGS"); do
  # stress-ng is not on a fresh machine; a shell busy loop loads one CPU just as well.
  ( while :; do :; done ) &
  hogs+=("$!")
done
echo "ci under load: commit $commit, $RUNS runs, $HOGS busy loops"
for run in $(seq "$RUNS"); do
  started=$(date +%s)
  clone="$CI_LOAD_DIR/run-$run"
  rm -rf "$clone"
  git clone -q --no-local "$repo" "$clone"
  git -C "$clone" checkout -q "$commit"
  if (cd "$clone" && bash .ci/run) >"$logs/run-$run.log" 2>&1; then
    echo "run $run of $RUNS: passed in $(( $(date +%s) - started )) s ($HOGS busy loops)"
    rm -rf "$clone"
  else
    echo "run $run of $RUNS: FAILED after $(( $(date +%s) - started )) s, see $logs/run-$run.log"
    exit 1
  fi
done
echo "ci under load: $RUNS of $RUNS runs passed"
