#!/usr/bin/env bash
# The published CPU runs, started or continued: every call picks up where the last one (in
# this session or, through the round records in docs/results/<name>/trials, in an earlier one)
# stopped, and publishes what is committed after each run.
#
#   benchmarks/cpu_runs.sh CHAIN [WORKERS]
#
# CHAIN a: the LPLgrad protocol, then Setting 1 low-data; CHAIN b: Setting 1 high-data, then
# Setting 2, then the Setting 2 whole-pool reference (random, every pool image labeled, the
# same recipe: the number the all-labeled end of the curves is compared with). CHAIN all: every
# run of both, one after the other (a's LPLgrad protocol, b's Setting 1 high, a's Setting 1
# low, b's Setting 2 and its reference), each with WORKERS trials at a time. Two chains keep
# two cores busy until the shorter one (a) is done; `all 2` keeps them busy to the end (one
# process: its workers share the runs' trials). WORKERS (default 1) is per chain. Results do
# not depend on WORKERS or on the chain that ran them.
# The "_v2" runs use the profiles of the five-seed republication (the runs published before
# under the names without "_v2" used the earlier profiles).
set -euo pipefail
cd "$(dirname "$0")/.."
chain=${1:?usage: benchmarks/cpu_runs.sh a|b|all [WORKERS]}
workers=${2:-1}
mkdir -p runs

run() {  # run NAME fishermask-run-arguments...
  local name=$1
  shift
  if [ ! -d "runs/$name" ] && [ -d "docs/results/$name" ]; then
    cp -r "docs/results/$name" "runs/$name"
  fi
  fishermask run "$@" --workers "$workers" --no-progress --out "runs/$name"
  benchmarks/publish_results.sh "runs/$name"
}

lplgrad() { run cifar10_lplgrad_cpu --config experiments/cifar10_lplgrad.yaml --profile cpu; }
s1_low() {
  run cifar10_setting1_low_cpu_v2 --config experiments/cifar10_setting1_low.yaml --profile cpu
}
s1_high() {
  run cifar10_setting1_high_cpu_v2 --config experiments/cifar10_setting1_high.yaml --profile cpu
}
s2() {
  run cifar10_setting2_cpu_v2 --config experiments/cifar10_setting2.yaml --profile cpu
  run cifar10_setting2_cpu_v2_whole_pool --config experiments/cifar10_setting2.yaml --profile cpu \
    --initial 7250 --rounds 0 --strategy random
}

case "$chain" in
  a) lplgrad; s1_low ;;
  b) s1_high; s2 ;;
  all) lplgrad; s1_high; s1_low; s2 ;;
  *)
    echo "usage: benchmarks/cpu_runs.sh a|b|all [WORKERS]" >&2
    exit 2
    ;;
esac
