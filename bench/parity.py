#!/usr/bin/env python3
"""The parity fixture: diffusers' schedulers driven by the exact eps of a Gaussian mixture.

Run with the peer's environment (bench/setup.sh):

    bench/.venv/bin/python bench/parity.py            # writes tests/data/diffusers-parity.json

Every scheduler runs under the DDPM linear schedule (1000 levels, betas 1e-4 .. 0.02, the
default of diffusers' schedulers) at 5, 10 and 25 steps on the exact eps of the 2-D mixture of
`tests/src/lib.rs::mixture_2d` (also written to the fixture, which the Rust side reads), from the
same standard-normal x_T. Deterministic schedulers run `DET_N` points, stochastic ones
`STOCH_N` (their outputs are compared in distribution). The fixture holds, per case: the
scheduler's class and config, its timesteps and (where it has them) sigmas, the noise level of
every model call (`alpha_bars`: for timestep schedulers `alphas_cumprod[t]`, for sigma
schedulers `1 / (1 + sigma^2)` of the sigma the call is scaled by), x_T and the outputs.
`tests/tests/parity.rs` replays it without Python.

The exact eps: at noise level alpha_bar the marginal of x_t = sqrt(ab) x_0 + sqrt(1 - ab) eps is
the mixture with means sqrt(ab) mu_k and variances ab s_k^2 + 1 - ab, and
eps = -sqrt(1 - ab) * score. Sigma schedulers (Euler, Heun, Euler ancestral) call the model on
`scale_model_input(x) = x / sqrt(sigma^2 + 1)`, which is the variance-preserving state at
alpha_bar = 1 / (1 + sigma^2), so the same function serves both.
"""

import inspect
import json
import os
import sys

import numpy as np
import safetensors.torch  # noqa: F401  (imported before diffusers, see bench/setup.sh)
import torch
import diffusers

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "diffusers-parity.json")
STEPS = [5, 10, 25]
DET_N = 16
STOCH_N = 256
SEED = 19

# tests/src/lib.rs::mixture_2d
WEIGHTS = [0.2, 0.3, 0.5]
MEANS = [[-1.5, 0.5], [1.0, 1.5], [0.5, -1.0]]
STDS = [0.3, 0.5, 0.4]

SCHEDULE = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", prediction_type="epsilon")

# name -> (class, extra config, stochastic)
CASES = {
    "ddim": ("DDIMScheduler", dict(clip_sample=False, set_alpha_to_one=True, steps_offset=0), False),
    "ddim-eta1": ("DDIMScheduler", dict(clip_sample=False, set_alpha_to_one=True, steps_offset=0), True),
    "dpmpp-2m": ("DPMSolverMultistepScheduler", dict(algorithm_type="dpmsolver++", solver_order=2), False),
    "dpmpp-3m": ("DPMSolverMultistepScheduler", dict(algorithm_type="dpmsolver++", solver_order=3), False),
    "dpmpp-2m-sde": ("DPMSolverMultistepScheduler", dict(algorithm_type="sde-dpmsolver++", solver_order=2), True),
    "unipc": ("UniPCMultistepScheduler", dict(solver_order=2, solver_type="bh2"), False),
    "euler-ancestral": ("EulerAncestralDiscreteScheduler", dict(), True),
    "euler": ("EulerDiscreteScheduler", dict(use_karras_sigmas=False), False),
    "euler-karras": ("EulerDiscreteScheduler", dict(use_karras_sigmas=True), False),
    "heun": ("HeunDiscreteScheduler", dict(use_karras_sigmas=False), False),
    "heun-karras": ("HeunDiscreteScheduler", dict(use_karras_sigmas=True), False),
}
SIGMA_SCHEDULERS = {"EulerDiscreteScheduler", "HeunDiscreteScheduler", "EulerAncestralDiscreteScheduler"}


def exact_eps(x, ab):
    """The exact eps of the mixture's marginal at alpha_bar `ab` (x: [n, 2], float64)."""
    ab = float(ab)
    w = torch.tensor(WEIGHTS, dtype=torch.float64)
    mu = torch.tensor(MEANS, dtype=torch.float64) * ab**0.5  # [k, 2]
    var = torch.tensor(STDS, dtype=torch.float64) ** 2 * ab + (1.0 - ab)  # [k]
    d = x[:, None, :] - mu[None]  # [n, k, 2]
    logp = torch.log(w)[None] - 0.5 * (d**2).sum(-1) / var[None] - x.shape[1] / 2 * torch.log(2 * np.pi * var)[None]
    r = torch.softmax(logp, dim=1)  # [n, k]
    score = -(r[:, :, None] * d / var[None, :, None]).sum(1)
    return -((1.0 - ab) ** 0.5) * score


def plain(v):
    """A config value as JSON has it: a non-finite float (`lambda_min_clipped = -inf`) as a string."""
    if isinstance(v, float) and not np.isfinite(v):
        return str(v)
    return list(v) if isinstance(v, tuple) else v


def run(name, steps, x_t):
    cls_name, extra, stochastic = CASES[name]
    cls = getattr(diffusers, cls_name)
    sched = cls(**SCHEDULE, **extra)
    sched.set_timesteps(steps)
    generator = torch.Generator().manual_seed(SEED + steps)
    alphas_cumprod = sched.alphas_cumprod.double()
    x = x_t * float(sched.init_noise_sigma)
    calls = []
    for t in sched.timesteps:
        x_in = sched.scale_model_input(x, t)
        if cls_name in SIGMA_SCHEDULERS:
            sigma = float(sched.sigmas[sched.step_index])
            ab = 1.0 / (1.0 + sigma * sigma)
        else:
            ab = float(alphas_cumprod[int(t)])
        calls.append(ab)
        eps = exact_eps(x_in, ab)
        kwargs = dict(eta=1.0) if name == "ddim-eta1" else {}
        if "generator" in inspect.signature(sched.step).parameters:
            kwargs["generator"] = generator
        x = sched.step(eps, t, x, **kwargs).prev_sample
    case = dict(
        name=name,
        scheduler=cls_name,
        config={k: plain(v) for k, v in sched.config.items() if not k.startswith("_") and k != "trained_betas"},
        steps=steps,
        stochastic=stochastic,
        timesteps=[float(t) for t in sched.timesteps],
        alpha_bars=calls,
        x_t=[round(float(v), 7) for v in x_t.flatten()],
        out=[round(float(v), 7) for v in x.flatten()],
    )
    if hasattr(sched, "sigmas") and sched.sigmas is not None:
        case["sigmas"] = [float(s) for s in torch.as_tensor(sched.sigmas).flatten()]
    return case


def main():
    torch.manual_seed(SEED)
    cases = []
    for name, (_, _, stochastic) in CASES.items():
        n = STOCH_N if stochastic else DET_N
        for steps in STEPS:
            x_t = torch.randn(n, 2, generator=torch.Generator().manual_seed(SEED * 1000 + steps), dtype=torch.float64)
            cases.append(run(name, steps, x_t))
    fixture = dict(
        generator="bench/parity.py",
        diffusers=diffusers.__version__,
        torch=torch.__version__,
        mixture=dict(weights=WEIGHTS, means=MEANS, stds=STDS),
        schedule=SCHEDULE,
        alphas_cumprod=[float(a) for a in diffusers.DDIMScheduler(**SCHEDULE).alphas_cumprod],
        cases=cases,
    )
    text = json.dumps(fixture, separators=(",", ":"), allow_nan=False)
    with open(OUT, "w") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(OUT)} ({len(text) / 1024:.0f} KB, {len(cases)} cases)", file=sys.stderr)


if __name__ == "__main__":
    main()
