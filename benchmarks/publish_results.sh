#!/usr/bin/env bash
# Copy the results files of finished (or partly finished) runs into docs/results/<run>/ and
# rebuild the report from those committed files alone:
#   benchmarks/publish_results.sh runs/cifar10_setting1_low_cpu [runs/... ...]
set -euo pipefail
cd "$(dirname "$0")/.."
dirs=()
for run in "$@"; do
  dest="docs/results/$(basename "$run")"
  mkdir -p "$dest"
  for f in results.csv queries.jsonl query_info.jsonl config.json summary.md learning_curves.png; do
    [ -f "$run/$f" ] && cp "$run/$f" "$dest/"
  done
  dirs+=("$dest")
done
fishermask report "${dirs[@]}" --out docs/results
