#!/usr/bin/env bash
# Copy the results files of finished (or partly finished) runs into docs/results/<run>/ and
# rebuild the report from the committed results files alone, over every run published there:
#   benchmarks/publish_results.sh runs/cifar10_setting1_high_cpu [runs/... ...]
# The round records (trials/*/round_*.json) are published too, with the latest checkpoint of
# each unfinished trial: copying docs/results/<run> back to runs/<run> and rerunning the run's
# command continues it in a later session (finished trials stay done, unfinished ones go on
# from their last committed round, with the same results as an uninterrupted run).
# A published run of the same name is replaced as a whole.
set -euo pipefail
cd "$(dirname "$0")/.."
for run in "$@"; do
  dest="docs/results/$(basename "$run")"
  [ "$(realpath "$run")" = "$(realpath -m "$dest")" ] && continue  # already published
  rm -rf "$dest"
  mkdir -p "$dest"
  for f in results.csv queries.jsonl query_info.jsonl confusion.jsonl config.json summary.md learning_curves.png; do
    [ -f "$run/$f" ] && cp "$run/$f" "$dest/"
  done
  # the shared round-0 models (one per seed): trials started in a later session, maybe on another
  # machine, start from them like the trials that ran here (not a .tmp file of one being written)
  for m in "$run"/round0/seed*.pt; do
    [ -f "$m" ] && mkdir -p "$dest/round0" && cp "$m" "$dest/round0/"
  done
  if [ -d "$run/trials" ]; then
    (cd "$run" && find trials -name 'round_*.json') | while read -r f; do
      mkdir -p "$dest/$(dirname "$f")"
      cp "$run/$f" "$dest/$f"
    done
    # an unfinished trial keeps its latest checkpoint (small at the cpu profiles' widths), so
    # that it continues where it stopped instead of starting over
    rounds=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['query_sizes']) + 1)" "$run/config.json")
    for t in "$run"/trials/*/; do
      n=$(find "$t" -name 'round_*.json' | wc -l)
      if [ "$n" -lt "$rounds" ]; then
        for m in "$t"model_*.pt; do
          [ -f "$m" ] && cp "$m" "$dest/trials/$(basename "$t")/"
        done
      fi
    done
  fi
done
dirs=()
for d in docs/results/*/; do
  [ -f "$d/results.csv" ] && dirs+=("${d%/}")
done
fishermask report "${dirs[@]}" --out docs/results --force
