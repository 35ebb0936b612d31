"""One sampling step of an imported diffusers UNet2DModel, scorediff against diffusers, interleaved.

Per round, one process of each implementation runs the nfe workload at one batch size
(`native-cli bench --model IMPORTED --workload nfe`, the core's ImageNet on Flex; bench/peer.py
--model CHECKPOINT, UNet2DModel.from_pretrained under torch.no_grad()): warm-up runs, then
timed runs, reporting their median. The two alternate which goes first from round to round, so
a slow phase of the machine hits both; the ratio ours / peer is taken within each round and the
table gives every round and the medians. Both read the same inputs (a float32 .npy [N, c*h*w]
of standard normal values, seed 0), run on the same threads (RAYON_NUM_THREADS /
OMP_NUM_THREADS / BLAS variables = --threads, pinned with taskset) and evaluate the same
timestep (t = 0.5, diffusers' 499). The raw JSON goes to --out.

Usage: bash bench/cifar-step.sh [--rounds R] (builds the checkpoint, imports it, calls this).
"""

import argparse
import datetime
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("compare", os.path.join(HERE, "compare.py"))
compare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare)


def commit():
    proc = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return proc.stdout.strip() or "unknown"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ours", required=True, help="the native-cli binary")
    p.add_argument("--imported", required=True, help="the checkpoint imported by native-cli import-diffusers")
    p.add_argument("--checkpoint", required=True, help="the diffusers checkpoint (from_pretrained)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--out", required=True, help="directory of the raw JSON")
    args = p.parse_args()

    env = dict(os.environ)
    for var in ["RAYON_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"]:
        env[var] = str(args.threads)
    pin = ["taskset", "-c", f"0-{args.threads - 1}"] if shutil.which("taskset") else []
    flags = ["--workload", "nfe", "--batches", str(args.batch), "--warmup", str(args.warmup), "--repeats", str(args.repeats)]
    ours = pin + [args.ours, "bench", "--model", args.imported, "--json"] + flags
    peer = pin + [sys.executable, os.path.join(HERE, "peer.py"), "--model", args.checkpoint] + flags

    # The card's shape and parameter count, from ours at batch 1 (untimed); the peer must agree.
    info = compare.run_json(pin + [args.ours, "bench", "--model", args.imported, "--json", "--workload", "nfe", "--batches", "1", "--warmup", "0", "--repeats", "1"], env)
    c, h, w = info["image"]
    tmp = tempfile.mkdtemp(prefix="scorediff-cifar-step-")
    inputs = os.path.join(tmp, "inputs.npy")
    np.save(inputs, np.random.default_rng(0).standard_normal((args.batch, c * h * w), dtype=np.float32))
    ours += ["--input", inputs]
    peer += ["--input", inputs]

    rounds = []
    for r in range(args.rounds):
        order = [("ours", ours), ("peer", peer)] if r % 2 == 0 else [("peer", peer), ("ours", ours)]
        got = {"first": order[0][0]}
        for name, cmd in order:
            rep = compare.run_json(cmd, env)
            m = rep["measurements"][0]
            got[name] = dict(median_s=m["median_s"], times_s=m["times_s"], parameters=rep["parameters"], image=rep["image"], threads=rep["threads"], peak_rss_mib=rep["peak_rss_mib"])
        if got["ours"]["parameters"] != got["peer"]["parameters"] or got["ours"]["image"] != got["peer"]["image"]:
            sys.exit(f"cifar-step.py: the two networks differ: ours {got['ours']['parameters']} parameters at {got['ours']['image']}, peer {got['peer']['parameters']} at {got['peer']['image']}")
        got["ratio"] = got["ours"]["median_s"] / got["peer"]["median_s"]
        rounds.append(got)
        print(f"  round {r + 1} ({got['first']} first): ours {got['ours']['median_s']:.3f} s, peer {got['peer']['median_s']:.3f} s, ratio {got['ratio']:.2f}", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)

    now = datetime.datetime.now().astimezone()
    machine = f"{compare.cpu_name()}, {os.cpu_count()} CPUs, {args.threads} threads"
    med = lambda who: statistics.median(g[who]["median_s"] for g in rounds)
    ratios = [g["ratio"] for g in rounds]
    report = dict(
        date=now.isoformat(timespec="seconds"), machine=machine, commit=commit(), network=info["network"], parameters=info["parameters"],
        image=info["image"], batch=args.batch, warmup=args.warmup, repeats=args.repeats, threads=args.threads, rounds=rounds,
        ours_s=med("ours"), peer_s=med("peer"), ratio=statistics.median(ratios), ratio_min=min(ratios), ratio_max=max(ratios),
    )
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"cifar-step-{now.strftime('%Y%m%d-%H%M%S')}.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"\n{info['network']}, {info['parameters']} parameters, {c}x{h}x{w}, batch {args.batch}; {machine}; {now.date()}; commit {report['commit']}")
    print(f"median of {args.repeats} evaluations after {args.warmup} warm-up per process; {args.rounds} interleaved rounds; raw data: {os.path.relpath(path)}\n")
    print("| round | first | ours (s per evaluation) | diffusers (s per evaluation) | ours / diffusers |")
    print("|---:|---|---:|---:|---:|")
    for i, g in enumerate(rounds):
        print(f"| {i + 1} | {g['first']} | {g['ours']['median_s']:.3f} | {g['peer']['median_s']:.3f} | {g['ratio']:.2f} |")
    print(f"| median | | {report['ours_s']:.3f} | {report['peer_s']:.3f} | {report['ratio']:.2f} ({report['ratio_min']:.2f}-{report['ratio_max']:.2f}) |")


if __name__ == "__main__":
    main()
