#!/usr/bin/env bash
# Every CUDA check in one go, for whoever has a GPU for a few minutes (under 8 minutes in all):
# the CUDA tests (engine, selection, training, evaluation, strategies, the runner with device
# cuda), then the paper-scale FisherMask query (full-width ResNet-18, sparsity 0.002 ->
# k ~ 22 000, pool 5 750 with 250 labeled, B = 250) timed by stage with the previous selection
# beside the new one, then the BAIT Setting 2 selection shape on the GPU.
# Results go under OUTDIR; commit them with the figures in docs/benchmarks.md.
#
# Time: one deadline for the whole script, GPU_CHECK_SECONDS after it starts (default 460 s,
# 7 min 40 s); each stage runs under `timeout` with its own cap (tests 180 s, query 200 s,
# BAIT 120 s), cut to what is left before the deadline, so the script ends before 8 minutes
# whatever a stage does (a stage that is cut short is reported and the exit status is 1).
#
#   usage: benchmarks/gpu_check.sh OUTDIR      (from the repository root, venv active)
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: benchmarks/gpu_check.sh OUTDIR" >&2
    exit 2
fi
deadline=$((SECONDS + ${GPU_CHECK_SECONDS:-460}))
out=$1
py=${PYTHON:-python}
mkdir -p "$out"

# seconds for the next stage: its cap, or what is left before the deadline (at least 1)
left() {
    local rest=$((deadline - SECONDS))
    if [ "$rest" -lt "$1" ]; then echo $((rest > 1 ? rest : 1)); else echo "$1"; fi
}

if ! timeout "$(left 60)" "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "error: torch sees no CUDA device; run this on a GPU machine with a CUDA build of torch" >&2
    exit 2
fi
{
    date -u
    git rev-parse HEAD 2>/dev/null || true
    timeout 20 nvidia-smi 2>/dev/null || true
    timeout "$(left 60)" "$py" -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())" || true
} > "$out/environment.txt"

status=0
echo "== CUDA tests" | tee "$out/tests.txt"
timeout -k 5 "$(left 180)" "$py" -m pytest tests/test_cuda.py tests/fisher -k cuda -rs -q 2>&1 \
    | tee -a "$out/tests.txt" || status=1

echo "== paper-scale FisherMask query" | tee "$out/paper_scale_query.txt"
timeout -k 5 "$(left 200)" "$py" benchmarks/fisher_query.py --device cuda --width 1 \
    --sparsity 0.002 --pool 5750 --labeled 250 --batch 250 --no-checks --compare-baseline 2>&1 \
    | tee -a "$out/paper_scale_query.txt" || status=1

echo "== BAIT Setting 2 selection shape" | tee "$out/bait_selection.txt"
timeout -k 5 "$(left 120)" "$py" benchmarks/selection_bench.py --device cuda --problem bait \
    --budget 2000 --backward-steps 1 2>&1 | tee -a "$out/bait_selection.txt" || status=1

echo "results in $out (exit status $status, $SECONDS s)"
exit $status
