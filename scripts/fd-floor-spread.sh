#!/usr/bin/env bash
# How far the Frechet distance moves on sample size alone: `native-cli eval --samples` on K
# random draws of N real training images (without replacement, Python's random with seed 0),
# each against the same N test images that `eval --seed 1` compares model samples with.
# Prints each draw's distance, then their mean, standard deviation, minimum and maximum: a
# model whose samples were as good as real data would land anywhere in that range.
#   scripts/fd-floor-spread.sh [DATASET] [N] [K]   (default: mnist 64 10)
set -euo pipefail
cd "$(dirname "$0")/.."
dataset=${1:-mnist}
n=${2:-64}
k=${3:-10}
cargo build --locked --release -p native-cli
cli=target/release/native-cli
images=data/$dataset/train-images-idx3-ubyte
[[ -f $images || -f $images.gz ]] || { echo "error: $images(.gz) not found: run scripts/fetch-data.sh $dataset" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Write K .npy files of N images each, [N, 1, 28, 28] float32 in [-1, 1] (no numpy needed).
python3 - "$images" "$n" "$k" "$tmp" <<'PY'
import array, gzip, os, random, struct, sys
path, n, k, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
raw = open(path, 'rb').read() if os.path.exists(path) else gzip.open(path + '.gz').read()
magic, count, rows, cols = struct.unpack('>IIII', raw[:16])
assert magic == 2051 and rows == cols == 28, f'{path}: not a 28x28 IDX image file'
rng = random.Random(0)
for j in range(k):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, 1, 28, 28), }" % n
    header += ' ' * (63 - (10 + len(header)) % 64) + '\n'
    a = array.array('f')
    for i in rng.sample(range(count), n):
        a.extend(b / 127.5 - 1 for b in raw[16 + 784 * i:16 + 784 * (i + 1)])
    with open(f'{out}/real-{j}.npy', 'wb') as f:
        f.write(b'\x93NUMPY\x01\x00' + struct.pack('<H', len(header)) + header.encode() + a.tobytes())
PY
for j in $(seq 0 $((k - 1))); do
  "$cli" eval --samples "$tmp/real-$j.npy" --dataset "$dataset" --n "$n" --seed 1 --json
done | python3 -c '
import json, statistics, sys
d = [json.loads(line)["frechet_distance"] for line in sys.stdin]
print("draws:", " ".join("%.2f" % x for x in d))
print("Frechet distance of %d real training images to the test images, %d draws: mean %.2f, sd %.2f, min %.2f, max %.2f"
      % (int(sys.argv[1]), len(d), statistics.mean(d), statistics.stdev(d), min(d), max(d)))' "$n"
