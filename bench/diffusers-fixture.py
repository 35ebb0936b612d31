"""Writes the diffusers fixtures of tests/tests/diffusers_import.rs (issue 21).

Two tiny UNet2DModel checkpoints with seeded random weights, saved by diffusers' own
save_pretrained, with the eps diffusers computes on seeded inputs at several timesteps:

- tests/data/diffusers-tiny/: google/ddpm-cifar10-32's block types (DownBlock2D,
  AttnDownBlock2D, DownBlock2D, DownBlock2D; the mirrored up blocks; mid attention), its
  downsample_padding 0, flip_sin_to_cos false, freq_shift 1 and norm_eps 1e-6, at widths
  (8, 16, 16, 16), one layer per block, 4 groups, 16x16 RGB, attention heads of width 8; with a
  DDPMScheduler scheduler_config.json as the checkpoint's (linear betas 1e-4..0.02, 1000 steps,
  fixed_large, clip_sample);
- tests/data/diffusers-tiny-variant/: the other options (attention at the full resolution,
  center_input_sample, mid_block_scale_factor, padding 1, flip_sin_to_cos true, freq_shift 0,
  single-head attention, one grey channel in, two out, 8x12).

Each directory's reference.json holds `cases`: x (flattened, shape given), timesteps (one per
sample) and diffusers' output; the first also holds alphas_cumprod of DDPMScheduler for each
beta_schedule (linear, scaled_linear, squaredcos_cap_v2) at a few indices.

Run in bench/'s environment: bench/.venv/bin/python bench/diffusers-fixture.py
"""

import json
import os
import sys

import safetensors.torch  # noqa: F401  (before diffusers, or safe serialization fails)
import torch
from diffusers import DDPMScheduler, UNet2DModel

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")


def randomize(model, seed):
    """Default init plus noise on every norm, so that no parameter keeps a trivial value."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                base = 1.0 if name.endswith("weight") else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.add_(0.02 * torch.randn(p.shape, generator=g))


def cases(model, shape, timesteps_list, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for ts in timesteps_list:
        x = torch.randn((len(ts),) + shape, generator=g)
        with torch.no_grad():
            y = model(x, torch.tensor(ts, dtype=torch.float32)).sample
        out.append({"x": x.flatten().tolist(), "x_shape": list(x.shape), "timesteps": ts, "out": y.flatten().tolist(), "out_shape": list(y.shape)})
    return out


def save_cifar10_scheduler(d):
    """google/ddpm-cifar10-32's scheduler_config.json (Ho et al. 2020's linear betas)."""
    DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="linear", beta_start=0.0001, beta_end=0.02, variance_type="fixed_large", clip_sample=True
    ).save_pretrained(d)


def write(name, config, shape, timesteps_list, seed, extra=None):
    torch.manual_seed(seed)
    model = UNet2DModel(**config).eval()
    randomize(model, seed + 1)
    d = os.path.join(ROOT, name)
    model.save_pretrained(d, safe_serialization=True)
    ref = {"parameters": sum(p.numel() for p in model.parameters()), "cases": cases(model, shape, timesteps_list, seed + 2)}
    ref.update(extra or {})
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(ref, f)
    print(f"{d}: {ref['parameters']} parameters", file=sys.stderr)
    return d


def main():
    tiny = dict(
        sample_size=16,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        norm_num_groups=4,
        norm_eps=1e-6,
        downsample_padding=0,
        flip_sin_to_cos=False,
        freq_shift=1,
        attention_head_dim=8,
    )
    schedules = {}
    for kind in ("linear", "scaled_linear", "squaredcos_cap_v2"):
        s = DDPMScheduler(num_train_timesteps=50, beta_schedule=kind, beta_start=0.0002, beta_end=0.03)
        idx = [0, 1, 9, 24, 49]
        schedules[kind] = {"num_train_timesteps": 50, "beta_start": 0.0002, "beta_end": 0.03, "index": idx, "alphas_cumprod": [float(s.alphas_cumprod[i]) for i in idx]}
    d = write("diffusers-tiny", tiny, (3, 16, 16), [[0, 999], [10, 250], [500, 998]], 21, {"schedules": schedules})
    save_cifar10_scheduler(d)

    variant = dict(
        sample_size=(8, 12),
        in_channels=1,
        out_channels=2,
        down_block_types=("AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D"),
        block_out_channels=(8, 12),
        layers_per_block=2,
        norm_num_groups=4,
        center_input_sample=True,
        mid_block_scale_factor=1.414,
        attention_head_dim=None,
    )
    write("diffusers-tiny-variant", variant, (1, 8, 12), [[3, 700], [0.5, 123.25]], 22)


if __name__ == "__main__":
    main()
