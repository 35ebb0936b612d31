"""The speed peer: diffusers' UNet2DModel with the architecture of scorediff's compact U-Net.

Mirrors `native-cli bench` (native-cli/src/bench.rs) workload for workload, with the same
inputs and the same JSON report, so bench/compare.py can interleave the two:

- train: one DDPM L_simple step (random t in 0..999, DDPMScheduler.add_noise, MSE on epsilon),
  backward, gradient-norm clipping at 1, AdamW (lr 2e-4, as scorediff's mnist preset), EMA 0.999;
- nfe: one forward pass at t = 500 under torch.no_grad();
- ddim: DDIMScheduler with 100 steps (eta = 0) from the given prior noise;
- gemm: one n x n matrix product (OpenBLAS through torch.mm), the practical peak.

The architecture comes from scorediff's U-Net config (JSON, `--config`): block_out_channels =
base_channels * channel_mult, layers_per_block = num_res_blocks, AttnDown/AttnUp blocks at the
attention levels, one attention head of the full width, norm_num_groups = groups, dropout, and
a positional (sinusoidal) time embedding of width base_channels into a 4 * base_channels MLP.
Parameter counts must match exactly; compare.py checks it.

With `--model DIR` instead, the network is `UNet2DModel.from_pretrained(DIR)` (a diffusers
checkpoint, e.g. bench/diffusers-parity-cifar.py's), at its config's [in_channels,
sample_size, sample_size], with inputs [N, c*h*w]; the nfe and ddim workloads only, at the
timestep `--timestep` (default 499: what `native-cli bench` evaluates, t = 0.5 on 1000 levels),
FLOPs unknown (null). bench/cifar-step.sh interleaves it with `native-cli bench --model`.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

import numpy as np
import safetensors.torch  # noqa: F401  (before diffusers, or loading safetensors fails)
import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel


def build_unet(cfg):
    base, mult = cfg["base_channels"], cfg["channel_mult"]
    levels = len(mult)
    attn = cfg.get("attention_resolutions")
    attn = [levels - 1] if attn is None else attn
    if cfg.get("num_classes") is not None:
        sys.exit("peer.py: class-conditional U-Nets are not mirrored (num_classes must be null)")
    time_embedding = cfg.get("time_embedding", {"kind": "sinusoidal"})
    if time_embedding.get("kind") != "sinusoidal":
        sys.exit(f"peer.py: only the sinusoidal time embedding is mirrored, found {time_embedding}")
    out_channels = cfg.get("out_channels") or cfg["in_channels"]
    return UNet2DModel(
        sample_size=28,
        in_channels=cfg["in_channels"],
        out_channels=out_channels,
        time_embedding_type="positional",
        flip_sin_to_cos=False,  # [sin, cos], as scorediff's sinusoidal_features
        freq_shift=1,  # f_i = 10000^(-i / (half - 1))
        block_out_channels=[base * m for m in mult],
        layers_per_block=cfg["num_res_blocks"],
        down_block_types=["AttnDownBlock2D" if l in attn else "DownBlock2D" for l in range(levels)],
        up_block_types=["AttnUpBlock2D" if l in attn else "UpBlock2D" for l in reversed(range(levels))],
        downsample_padding=1,
        downsample_type="conv",
        upsample_type="conv",
        dropout=cfg["dropout"],
        act_fn="silu",
        attention_head_dim=None,  # one head over the whole width
        norm_num_groups=cfg["groups"],
        norm_eps=1e-5,
        add_attention=True,
    )


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def timed(warmup, repeats, fn):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--config", help="scorediff U-Net config (JSON)")
    which.add_argument("--model", help="a diffusers UNet2DModel directory (from_pretrained)")
    p.add_argument("--timestep", type=float, default=None, help="timestep of nfe (default 500; 499 with --model)")
    p.add_argument("--workload", default="train,nfe")
    p.add_argument("--batches", default="1,16,64")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--ddim-steps", type=int, default=100)
    p.add_argument("--gemm-size", type=int, default=1024)
    p.add_argument("--input", help="float32 .npy [N, c*h*w] (784 for --config)")
    p.add_argument("--forward-flops", type=int, default=0, help="FLOPs per image and forward pass (from native-cli bench)")
    p.add_argument("--params-only", action="store_true")
    args = p.parse_args()

    threads = int(os.environ.get("OMP_NUM_THREADS", "0")) or os.cpu_count()
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    if args.model:
        bad = [w for w in args.workload.split(",") if w not in ("nfe", "ddim", "gemm")]
        if bad:
            sys.exit(f"peer.py: --model times nfe, ddim and gemm, found {','.join(bad)}")
        model = UNet2DModel.from_pretrained(args.model)
        side = model.config.sample_size
        side = side if isinstance(side, int) else side[0]
        image = [model.config.in_channels, side, side]
        network = f"diffusers UNet2DModel ({os.path.basename(os.path.abspath(args.model))})"
    else:
        with open(args.config) as f:
            cfg = json.load(f)
        model = build_unet(cfg)
        image = [1, 28, 28]
        network = "diffusers UNet2DModel"
    pixels_per_image = image[0] * image[1] * image[2]
    timestep = args.timestep if args.timestep is not None else (499 if args.model else 500)
    timestep = int(timestep) if float(timestep).is_integer() else timestep
    known_flops = not args.model
    parameters = sum(p.numel() for p in model.parameters())
    if args.params_only:
        print(json.dumps({"parameters": parameters}))
        return

    batches = [int(b) for b in args.batches.split(",")]
    rows = max(batches)
    if args.input:
        pixels = np.load(args.input).astype(np.float32)
        if pixels.ndim != 2 or pixels.shape[1] != pixels_per_image or pixels.shape[0] < rows:
            sys.exit(f"peer.py: --input {args.input}: expected [N >= {rows}, {pixels_per_image}], found {list(pixels.shape)}")
    else:
        pixels = np.random.default_rng(0).standard_normal((rows, pixels_per_image), dtype=np.float32)
    batch_of = lambda b: torch.from_numpy(pixels[:b].reshape(b, *image).copy())

    ddpm = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=0.0)
    ema = [q.detach().clone() for q in model.parameters()]
    measurements = []

    def measure(workload, batch, flops, times):
        med = statistics.median(times)
        known = known_flops or workload == "gemm"
        measurements.append(dict(workload=workload, batch=batch, times_s=times, median_s=med, flops=flops if known else None,
                                 gflops_per_s=flops / med / 1e9 if known else None))

    for workload in args.workload.split(","):
        if workload == "gemm":
            n = args.gemm_size
            a, b = torch.randn(n, n), torch.randn(n, n)
            measure(workload, n, 2 * n**3, timed(args.warmup, args.repeats, lambda: torch.mm(a, b)))
            continue
        for b in batches:
            images = b * args.forward_flops
            if workload == "train":
                x0 = batch_of(b)
                model.train()

                def step():
                    t = torch.randint(0, 1000, (b,))
                    eps = torch.randn_like(x0)
                    loss = torch.nn.functional.mse_loss(model(ddpm.add_noise(x0, eps, t), t).sample, eps)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    opt.step()
                    with torch.no_grad():
                        params = [q.detach() for q in model.parameters()]
                        torch._foreach_mul_(ema, 0.999)
                        torch._foreach_add_(ema, params, alpha=0.001)

                measure(workload, b, 3 * images, timed(args.warmup, args.repeats, step))
            elif workload == "nfe":
                x = batch_of(b)
                model.eval()
                t = torch.full((b,), timestep)

                def nfe():
                    with torch.no_grad():
                        model(x, t).sample

                measure(workload, b, images, timed(args.warmup, args.repeats, nfe))
            elif workload == "ddim":
                x_t = batch_of(b)
                model.eval()
                sched = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02, clip_sample=False)
                sched.set_timesteps(args.ddim_steps)

                def ddim():
                    x = x_t
                    with torch.no_grad():
                        for t in sched.timesteps:
                            x = sched.step(model(x, t).sample, t, x, eta=0.0).prev_sample

                measure(workload, b, args.ddim_steps * images, timed(args.warmup, args.repeats, ddim))
            else:
                sys.exit(f"peer.py: --workload: expected train, nfe, ddim or gemm, found {workload}")

    print(json.dumps(dict(
        network=network, parameters=parameters, backend=f"torch {torch.__version__} cpu",
        threads=torch.get_num_threads(), image=image, forward_flops_per_image=args.forward_flops if known_flops else None,
        warmup=args.warmup, repeats=args.repeats, ddim_steps=args.ddim_steps,
        measurements=measurements, peak_rss_mib=peak_rss_mib(),
    )))


if __name__ == "__main__":
    main()
