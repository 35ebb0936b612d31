#!/usr/bin/env python3
"""Writes www/data/DATASET-test.json: the first N images of the MNIST or Fashion-MNIST test set
(t10k), which the models never saw in training, for the page's inverse problems (measured there
as ground truths; the page offers a model the test images of its card's data set).

Usage: python3 scripts/make-test-digits.py [--dataset mnist|fashion-mnist] [--data data/DATASET]
                                           [--n 8] [--out www/data/DATASET-test.json]

data/DATASET comes from scripts/fetch-data.sh. The IDX files are read as core/src/data/idx.rs
reads them (big-endian header: magic 0x00000803 for images, 0x00000801 for labels, then the
counts and the 28x28 u8 pixels); plain or gzip. Pixels are stored as they are (0..255); the page
maps them to [-1, 1] by core's data::mnist::pixel_to_signed, p / 127.5 - 1, the scale the model
was trained on. Image i of the file is test image i, so `native-cli solve --test-index i`
measures the same digit.
"""
import argparse, gzip, json, os, struct, sys


# Class names by label (Fashion-MNIST's from Xiao, Rasul & Vollgraf 2017, Table 1).
CLASSES = {
    'mnist': [str(k) for k in range(10)],
    'fashion-mnist': ['T-shirt/top', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'ankle boot'],
}
TITLES = {'mnist': 'MNIST', 'fashion-mnist': 'Fashion-MNIST'}


def read(path):
    for p in (path, path + '.gz'):
        if os.path.exists(p):
            opener = gzip.open if p.endswith('.gz') else open
            with opener(p, 'rb') as f:
                return f.read()
    sys.exit(f'{path}: not found (run scripts/fetch-data.sh)')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--dataset', choices=sorted(CLASSES), default='mnist')
    ap.add_argument('--data', default=None)
    ap.add_argument('--n', type=int, default=8)
    ap.add_argument('--out', default=None)
    a = ap.parse_args()
    a.data = a.data or os.path.join('data', a.dataset)
    a.out = a.out or os.path.join('www', 'data', f'{a.dataset}-test.json')
    images = read(os.path.join(a.data, 't10k-images-idx3-ubyte'))
    labels = read(os.path.join(a.data, 't10k-labels-idx1-ubyte'))
    magic, n, h, w = struct.unpack('>IIII', images[:16])
    if magic != 0x803 or (h, w) != (28, 28) or len(images) != 16 + n * h * w:
        sys.exit(f'images: expected an IDX file of 28x28 u8 images (magic 0x803), found magic {magic:#x}, {n} of {h}x{w}')
    lmagic, ln = struct.unpack('>II', labels[:8])
    if lmagic != 0x801 or ln != n:
        sys.exit(f'labels: expected magic 0x801 and {n} labels, found {lmagic:#x}, {ln}')
    if not 1 <= a.n <= n:
        sys.exit(f'--n: expected 1 to {n}, found {a.n}')
    names = CLASSES[a.dataset]
    digits = [{'index': i, 'label': labels[8 + i], 'name': names[labels[8 + i]], 'pixels': list(images[16 + i * h * w:16 + (i + 1) * h * w])} for i in range(a.n)]
    doc = {
        'about': f'the first {a.n} {TITLES[a.dataset]} test images (t10k-images-idx3-ubyte), written by scripts/make-test-digits.py; '
                 'pixels row-major 0..255, in [-1, 1] as p / 127.5 - 1',
        'dataset': a.dataset,
        'shape': [1, h, w],
        'digits': digits,
    }
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, 'w') as f:
        json.dump(doc, f, separators=(',', ':'))
        f.write('\n')
    print(f'wrote {a.out}: {a.n} images, labels {[d["label"] for d in digits]}, {os.path.getsize(a.out)} bytes')


if __name__ == '__main__':
    main()
