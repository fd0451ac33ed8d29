#!/usr/bin/env bash
# Round 0 of CIFAR-10 Setting 1 and 2 (cpu-profile network and training): the plain model
# against the model trained jointly with the loss-prediction module at weights 1 and 0.1.
# Each (strategy, seed) is one training of the same initial labeled set from the same
# initial weights, so the differences are the module's effect on the classifier.
#   benchmarks/lpl_round0.sh OUT_DIR    (about 10 minutes per setting on one core)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: benchmarks/lpl_round0.sh OUT_DIR}
for preset in setting1 setting2; do
  initial=$([ "$preset" = setting1 ] && echo 250 || echo 500)
  fishermask run --dataset ../shared/datasets/cifar10-jpeg.tar.gz --preset "$preset" \
    --model resnet18 --width 0.125 --max-epochs 20 --initial "$initial" --rounds 0 --seeds 5 \
    --workers 1 --no-progress \
    -s random -s lpl:label=lpl-w1 -s lpl:weight=0.1,label=lpl-w0.1 \
    -s lplgrad:weight=0.1,label=lplgrad-w0.1 --out "$out/round0_$preset"
done
