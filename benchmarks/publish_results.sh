#!/usr/bin/env bash
# Copy the results files of finished (or partly finished) runs into docs/results/<run>/ and
# rebuild the report from the committed results files alone, over every run published there:
#   benchmarks/publish_results.sh runs/cifar10_setting1_high_cpu [runs/... ...]
# The round records (trials/*/round_*.json, no model checkpoints) are published too: copying
# docs/results/<run> back to runs/<run> and rerunning the run's command continues it in a later
# session (finished trials stay done; unfinished ones start over, with the same results).
# A published run of the same name is replaced as a whole.
set -euo pipefail
cd "$(dirname "$0")/.."
for run in "$@"; do
  dest="docs/results/$(basename "$run")"
  [ "$(realpath "$run")" = "$(realpath -m "$dest")" ] && continue  # already published
  rm -rf "$dest"
  mkdir -p "$dest"
  for f in results.csv queries.jsonl query_info.jsonl config.json summary.md learning_curves.png; do
    [ -f "$run/$f" ] && cp "$run/$f" "$dest/"
  done
  if [ -d "$run/trials" ]; then
    (cd "$run" && find trials -name 'round_*.json') | while read -r f; do
      mkdir -p "$dest/$(dirname "$f")"
      cp "$run/$f" "$dest/$f"
    done
  fi
done
dirs=()
for d in docs/results/*/; do
  [ -f "$d/results.csv" ] && dirs+=("${d%/}")
done
fishermask report "${dirs[@]}" --out docs/results --force
