#!/usr/bin/env bash
# Every benchmark in benchmarks/: each prints its ratio against a baseline measured in the same
# run and writes its figures to benchmarks/results/*.json.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p benchmarks/results
status=0
for bench in benchmarks/*_bench.py; do
  [ -e "$bench" ] || continue
  echo "=== $bench ==="
  .venv/bin/python "$bench" || status=$?
done
exit $status
