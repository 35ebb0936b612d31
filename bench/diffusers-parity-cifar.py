"""CIFAR-size parity of the diffusers import (issue 21): google/ddpm-cifar10-32's published
UNet2DModel config (written out here: the hub is unreachable) with seeded random weights,
saved by diffusers' save_pretrained into OUT (default: a temporary directory) with its
published DDPMScheduler scheduler_config.json (linear betas 1e-4..0.02, 1000 steps, fixed_large,
clip_sample, as tests/data/diffusers-tiny's) so that native-cli import-diffusers takes it, and a
reference.json of diffusers' eps on seeded 32x32 RGB inputs at several timesteps, in the
format of tests/data/diffusers-tiny. bench/diffusers-parity-cifar.sh then replays it in Rust.

Usage: bench/.venv/bin/python bench/diffusers-parity-cifar.py OUT
"""

import importlib.util
import os
import sys

import safetensors.torch  # noqa: F401  (before diffusers)
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("fixture", os.path.join(HERE, "diffusers-fixture.py"))
fixture = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fixture)

# google/ddpm-cifar10-32/unet/config.json (diffusers' conversion of Ho et al. 2020's CIFAR-10
# model), less its metadata.
CIFAR10 = dict(
    sample_size=32,
    in_channels=3,
    out_channels=3,
    act_fn="silu",
    attention_head_dim=None,
    block_out_channels=(128, 256, 256, 256),
    center_input_sample=False,
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    downsample_padding=0,
    flip_sin_to_cos=False,
    freq_shift=1,
    layers_per_block=2,
    mid_block_scale_factor=1,
    norm_eps=1e-6,
    norm_num_groups=32,
    time_embedding_type="positional",
)


def main():
    out = sys.argv[1]
    fixture.ROOT = os.path.dirname(os.path.abspath(out))
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    d = fixture.write(os.path.basename(os.path.abspath(out)), CIFAR10, (3, 32, 32), [[0, 999], [10, 250], [500, 998]], 35)
    fixture.save_cifar10_scheduler(d)


if __name__ == "__main__":
    main()
