#!/usr/bin/env bash
# Runs the benchmarks one after another (never side by side: two torch processes on a small CPU
# distort each other's timings) and keeps each one's output and last JSON line under results/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results
mkdir -p "$out"
run() {
  local name=$1; shift
  echo "== $name: $*" >&2
  .venv/bin/python "$@" 2>"$out/$name.log" | tee "$out/$name.txt"
  tail -n 1 "$out/$name.txt" > "$out/$name.json"
}
for spec in "$@"; do
  name=${spec%%:*}; args=${spec#*:}
  # shellcheck disable=SC2086
  run "$name" $args
done
