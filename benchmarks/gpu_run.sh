#!/usr/bin/env bash
# The paper-profile runs on a GPU, a few minutes at a time, continued across sessions.
#
#   benchmarks/gpu_run.sh OUT [SECONDS]
#
# From the repository root of a GPU machine (CUDA PyTorch installed), in about SECONDS (default
# 420) plus start-up:
#   1. the CUDA tests (the tests skip their CUDA cases on a machine without CUDA);
#   2. as much of the current paper-profile setting as fits: Setting 1 low-data until it is
#      complete, then Setting 2. Several trials share the GPU (--workers, default 4). The run
#      stops at the time limit like a Ctrl-C (committed rounds kept) and continues next time.
#   3. OUT gets the run's results files and trials.tar.gz (its round records, no checkpoints).
# Back on the development machine, publish what came back and commit it:
#   mkdir -p runs/NAME && cp OUT/* runs/NAME/ && tar -xzf runs/NAME/trials.tar.gz -C runs/NAME \
#     && rm runs/NAME/trials.tar.gz && benchmarks/publish_results.sh runs/NAME
# where NAME is the name printed at the end. The next call starts from docs/results/NAME.
#
# The GPU machine has no network and no ../shared: copy the CIFAR-10 tarball into the ignored
# folder .carry/ (and, where its Python lacks them, wheels of pydantic, pydantic-core,
# annotated-types, typing-inspection into .carry/wheels/; see the device tool's README), and
# carry .carry with the command. Environment overrides, for a dry run on a CPU:
#   FM_RUNS=/tmp/gpu_runs FM_DEVICE=cpu FM_WORKERS=1 FM_EXTRA="--width 0.125 --max-epochs 1 --budget 175 --seeds 1 \
#     -s random -s fishermask:sparsity=0.005" \
#     benchmarks/gpu_run.sh /tmp/gpu_out 60
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:?usage: benchmarks/gpu_run.sh OUT [SECONDS]}")
seconds=${2:-420}
device=${FM_DEVICE:-cuda}
workers=${FM_WORKERS:-4}
runs=${FM_RUNS:-runs}  # where run directories live
data=${FM_DATA:-.carry/cifar10-jpeg.tar.gz}
[ -f "$data" ] || data=../shared/datasets/cifar10-jpeg.tar.gz
mkdir -p "$out"
start=$(date +%s)

if [ -d .carry/wheels ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/fm_site \
    .carry/wheels/*.whl && export PYTHONPATH="/tmp/fm_site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
py=${FM_PYTHON:-python3}
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" \
  | tee "$out/environment.txt"

echo "== CUDA tests" | tee "$out/log.txt"
"$py" -m pytest -q -p no:cacheprovider -k "cuda or gpu" tests/fisher tests/training \
  tests/experiments tests/strategies tests/models 2>&1 | tail -n 15 | tee -a "$out/log.txt"

# the first paper-profile setting that is not complete yet
for setting in setting1_low setting2; do
  name="cifar10_${setting}_paper"
  run="$runs/$name"
  if [ ! -d "$run" ] && [ -d "docs/results/$name" ]; then
    mkdir -p "$runs" && cp -r "docs/results/$name" "$run"
  fi
  if "$py" - "$run" <<'PY'
import sys
from pathlib import Path
from fishermask.reporting.outputs import run_complete
# every trial config.json plans has finished every planned round
done = run_complete(Path(sys.argv[1]))
sys.exit(0 if done else 1)
PY
  then
    echo "$name is complete" | tee -a "$out/log.txt"
    continue
  fi
  break
done
left=$(( seconds - ($(date +%s) - start) ))
echo "== $name for ${left} s on $device" | tee -a "$out/log.txt"
# shellcheck disable=SC2086
timeout -s INT -k 60 "$left" "$py" -m fishermask.cli run \
  --config "experiments/cifar10_${setting}.yaml" --profile paper --dataset "$data" \
  --device "$device" --workers "$workers" --no-progress ${FM_EXTRA:-} --out "$run" \
  2>&1 | tail -n 25 | tee -a "$out/log.txt"

for f in results.csv queries.jsonl query_info.jsonl config.json summary.md; do
  [ -f "$run/$f" ] && cp "$run/$f" "$out/"
done
[ -d "$run/trials" ] && (cd "$run" && find trials -name 'round_*.json' -print0 \
  | tar --null -czf "$out/trials.tar.gz" -T -)
echo "NAME=$name" | tee -a "$out/log.txt"
