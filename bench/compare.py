"""Times scorediff (native-cli bench) against PyTorch + diffusers (bench/peer.py), interleaved.

For every (workload, batch) pair and every round, one process of each implementation runs the
workload (warm-up runs, then timed runs, reporting their median and its own peak resident
memory); the two alternate which goes first from round to round, so a slow phase of the machine
hits both. The ratio ours / peer is taken per round, and the table reports the median over
rounds of each time and of the ratio (with the ratios' range). Both run on the same threads:
RAYON_NUM_THREADS / OMP_NUM_THREADS (and the BLAS variables) set to --threads, and the process
pinned to the first --threads CPUs with taskset when it is there. Both read the same inputs
(a float32 .npy of standard normal values, seed 0). GFLOP/s use the FLOP count of
scorediff::nn::flops (the architectures are the same: the parameter counts must match exactly).

Usage: bench/run.sh (sets up the peer, builds native-cli, calls this).
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

# (workload, batch, warm-up runs, timed runs) per process.
WORKLOADS = [
    ("train", 16, 1, 3),
    ("train", 64, 1, 3),
    ("train", 128, 1, 3),
    ("nfe", 1, 2, 5),
    ("nfe", 16, 1, 5),
    ("nfe", 64, 1, 3),
    ("ddim", 64, 0, 1),
    ("gemm", 1024, 2, 5),
]


def run_json(cmd, env):
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"compare.py: {' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ours", required=True, help="the native-cli binary")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", help="comma-separated workload[:batch] filter, e.g. train:64,nfe")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    args = p.parse_args()

    env = dict(os.environ)
    for var in ["RAYON_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"]:
        env[var] = str(args.threads)
    pin = ["taskset", "-c", f"0-{args.threads - 1}"] if shutil.which("taskset") else []
    ours = pin + [args.ours, "bench", "--json"]
    peer = pin + [sys.executable, os.path.join(HERE, "peer.py")]

    os.makedirs(args.out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="scorediff-bench-")
    # The network, its FLOPs per evaluation and parameter count, from ours; the peer mirrors it.
    info = run_json(ours + ["--workload", "gemm", "--gemm-size", "8", "--warmup", "0", "--repeats", "1"], env)
    config = os.path.join(tmp, "unet.json")
    with open(config, "w") as f:
        json.dump(info["unet"], f)
    peer = peer + ["--config", config, "--forward-flops", str(info["forward_flops_per_image"])]
    peer_params = run_json(peer + ["--params-only"], env)["parameters"]
    print(f"parameters: ours {info['parameters']}, peer {peer_params}")
    if peer_params != info["parameters"]:
        sys.exit("compare.py: the parameter counts differ: the peer does not mirror the architecture")
    print(f"forward FLOPs per image: {info['forward_flops_per_image'] / 1e6:.1f} M")

    rows = max(b for w, b, _, _ in WORKLOADS if w != "gemm")
    inputs = os.path.join(tmp, "inputs.npy")
    np.save(inputs, np.random.default_rng(0).standard_normal((rows, 784), dtype=np.float32))

    selected = WORKLOADS
    if args.only:
        keep = [s.split(":") for s in args.only.split(",")]
        selected = [w for w in WORKLOADS if any(k[0] == w[0] and (len(k) == 1 or int(k[1]) == w[1]) for k in keep)]
    results = []
    for workload, batch, warmup, repeats in selected:
        flags = ["--workload", workload, "--warmup", str(warmup), "--repeats", str(repeats), "--input", inputs]
        flags += ["--gemm-size", str(batch)] if workload == "gemm" else ["--batches", str(batch)]
        rounds = []
        for r in range(args.rounds):
            order = [("ours", ours), ("peer", peer)] if r % 2 == 0 else [("peer", peer), ("ours", ours)]
            got = {}
            for name, cmd in order:
                rep = run_json(cmd + flags, env)
                m = rep["measurements"][0]
                got[name] = dict(median_s=m["median_s"], times_s=m["times_s"], flops=m["flops"], peak_rss_mib=rep["peak_rss_mib"])
            got["ratio"] = got["ours"]["median_s"] / got["peer"]["median_s"]
            rounds.append(got)
            print(f"  {workload:>5} {batch:>4} round {r + 1}: ours {got['ours']['median_s']:.4f} s, peer {got['peer']['median_s']:.4f} s, ratio {got['ratio']:.2f}", flush=True)
        med = lambda who, key: statistics.median(g[who][key] for g in rounds)
        ratios = [g["ratio"] for g in rounds]
        flops = rounds[0]["ours"]["flops"]
        results.append(dict(
            workload=workload, batch=batch, warmup=warmup, repeats=repeats, rounds=rounds,
            ours_s=med("ours", "median_s"), peer_s=med("peer", "median_s"),
            ratio=statistics.median(ratios), ratio_min=min(ratios), ratio_max=max(ratios), flops=flops,
            ours_gflops=flops / med("ours", "median_s") / 1e9, peer_gflops=flops / med("peer", "median_s") / 1e9,
            ours_rss_mib=max(g["ours"]["peak_rss_mib"] for g in rounds), peer_rss_mib=max(g["peer"]["peak_rss_mib"] for g in rounds),
        ))

    now = datetime.datetime.now().astimezone()
    machine = f"{cpu_name()}, {os.cpu_count()} CPUs, {args.threads} threads"
    report = dict(date=now.isoformat(timespec="seconds"), machine=machine, parameters=info["parameters"],
                  forward_flops_per_image=info["forward_flops_per_image"], threads=args.threads, rounds=args.rounds, results=results)
    path = os.path.join(args.out, f"compare-{now.strftime('%Y%m%d-%H%M%S')}.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    label = {"train": "training step", "nfe": "sampling step (1 NFE)", "ddim": f"DDIM sample, {info['ddim_steps']} steps", "gemm": "f32 gemm n x n"}
    print(f"\n{machine}; {now.date()}; median over {args.rounds} interleaved rounds; raw data: {os.path.relpath(path)}\n")
    print("| workload | batch | ours (s) | peer (s) | ours / peer (range) | ours GFLOP/s | peer GFLOP/s | ours peak RSS (MiB) | peer peak RSS (MiB) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {label[r['workload']]} | {r['batch']} | {r['ours_s']:.4f} | {r['peer_s']:.4f} | {r['ratio']:.2f} ({r['ratio_min']:.2f}-{r['ratio_max']:.2f}) "
              f"| {r['ours_gflops']:.1f} | {r['peer_gflops']:.1f} | {r['ours_rss_mib']:.0f} | {r['peer_rss_mib']:.0f} |")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
