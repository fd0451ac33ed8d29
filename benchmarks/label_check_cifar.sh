#!/usr/bin/env bash
# `fishermask label check` on real images with known wrong labels: 1 000 CIFAR-10 JPEGs (the
# first 100 training images of each class), 92 labels flipped at random (seed 0) to another
# class; init with those labels, `label train`, `label check`, then how many flags are flips
# and how many flips the Labeled view's order ("likely mistakes first") puts in its first 92.
#
#   benchmarks/label_check_cifar.sh WORKDIR   (docs/labeling.md, "Finding wrong labels"; ~5-25 min on 2 cores)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:?usage: benchmarks/label_check_cifar.sh WORKDIR}
tarball=${CIFAR_JPEG:-$root/../shared/datasets/cifar10-jpeg.tar.gz}
mkdir -p "$work" && cd "$work"
rm -rf imgs proj labels.csv flips.txt issues.json labeled.json
mkdir imgs
classes=(airplane automobile bird cat deer dog frog horse ship truck)
members=()
for c in "${classes[@]}"; do
  for i in $(seq -f "%04g" 0 99); do members+=("train/$c/$i.jpg"); done
done
tar xzf "$tarball" -C imgs "${members[@]}"
python3 - <<'P'
import random
classes = "airplane automobile bird cat deer dog frog horse ship truck".split()
rows = [(f"train/{c}/{i:04d}.jpg", c) for c in classes for i in range(100)]
rng = random.Random(0)
flip = set(rng.sample(range(len(rows)), 92))
with open("labels.csv", "w") as f, open("flips.txt", "w") as g:
    f.write("path,label\n")
    for k, (path, c) in enumerate(rows):
        if k in flip:
            c = rng.choice([x for x in classes if x != c])
            g.write(path + "\n")
        f.write(f"{path},{c}\n")
P
fishermask label init proj --images imgs --classes "$(IFS=,; echo "${classes[*]}")" \
  --labels labels.csv --no-progress
/usr/bin/time -f "label train: %e s" fishermask label train proj
/usr/bin/time -f "label check: %e s" fishermask label check proj --format json --out issues.json
fishermask label status proj --list labeled --format json > labeled.json
python3 - <<'P'
import json
flips = set(open("flips.txt").read().split())
flagged = {d["path"] for d in json.load(open("issues.json"))}
order = [d["path"] for d in json.load(open("labeled.json"))]  # likely mistakes first
hit = len(flagged & flips)
print(f"flagged {len(flagged)}, {hit} of the {len(flips)} flips among them "
      f"(precision {hit / max(1, len(flagged)):.2f}); flips among the first {len(flips)} "
      f"of the Labeled view: {len(set(order[:len(flips)]) & flips)} "
      f"({len(flips) ** 2 / len(order):.1f} by chance)")
P
