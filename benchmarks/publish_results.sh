#!/usr/bin/env bash
# Copy the results files of finished (or partly finished) runs into docs/results/<run>/ and
# rebuild the report from the committed results files alone, over every run published there:
#   benchmarks/publish_results.sh runs/cifar10_setting1_high_cpu [runs/... ...]
set -euo pipefail
cd "$(dirname "$0")/.."
for run in "$@"; do
  dest="docs/results/$(basename "$run")"
  [ "$(realpath "$run")" = "$(realpath -m "$dest")" ] && continue  # already published
  mkdir -p "$dest"
  for f in results.csv queries.jsonl query_info.jsonl config.json summary.md learning_curves.png; do
    [ -f "$run/$f" ] && cp "$run/$f" "$dest/"
  done
done
dirs=()
for d in docs/results/*/; do
  [ -f "$d/results.csv" ] && dirs+=("${d%/}")
done
fishermask report "${dirs[@]}" --out docs/results
