"""Exports the shipped MNIST U-Net's architecture to ONNX for the browser side-by-side (issue 20).

Builds bench/peer.py's diffusers UNet2DModel from the `network` of a model card (default
www/models/mnist/model.json), refuses to go on unless its parameter count equals the card's
(`parameters`, which `native-cli export` writes from our U-Net: 408 641 for the shipped MNIST
model), and writes it with torch.onnx.export: inputs `sample` [b, 1, 28, 28] (float32) and
`timestep` [b] (float32, diffusers' timestep: 1000 t for our t), output `out` of the sample's
shape, the batch axis dynamic.

Weights: random (torch.manual_seed(0), diffusers' default initialisation). Our weights are not
mapped into the peer: the evaluation's cost does not depend on their values, so the timings
compare the same architecture, not the same function. Run in bench/.venv (bench/setup.sh):

    bench/.venv/bin/python bench/onnx-export.py --out target/browser-bench/unet-mnist.onnx

Beside the model it writes `<name>.reference.json`: a batch-2 input (sample, timestep) and
torch's output, which bench/browser/ort.test.mjs replays in onnxruntime-web. Prints one JSON
line: {"onnx", "bytes", "parameters", "opset", "max_abs_diff"} where
max_abs_diff compares torch's output with the exported graph's when onnxruntime is importable
(null otherwise).
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import safetensors.torch  # noqa: F401,E402  (diffusers reaches safetensors.torch without importing it)
import torch  # noqa: E402

from peer import build_unet  # noqa: E402


def image_shape(card):
    shape = card.get("shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(d, int) and d > 0 for d in shape)):
        sys.exit(f"onnx-export.py: the card's shape: expected [c, h, w], found {shape!r}")
    return shape


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--card", default=os.path.join(HERE, "..", "www", "models", "mnist", "model.json"))
    p.add_argument("--out", default=os.path.join(HERE, "..", "target", "browser-bench", "unet-mnist.onnx"))
    p.add_argument("--opset", type=int, default=17)
    args = p.parse_args()

    with open(args.card) as f:
        card = json.load(f)
    net = card.get("network")
    if not isinstance(net, dict) or net.get("kind") != "unet":
        sys.exit(f"onnx-export.py: {args.card}: expected a card whose network is a unet, found {net and net.get('kind')!r}")
    c, h, w = image_shape(card)
    if [c, h, w] != [net["in_channels"], 28, 28]:
        sys.exit(f"onnx-export.py: {args.card}: peer.py mirrors 28x28 images of in_channels channels, found {[c, h, w]}")
    expected = card.get("parameters")
    if not isinstance(expected, int):
        sys.exit(f"onnx-export.py: {args.card}: the card has no parameter count")

    torch.manual_seed(0)
    model = build_unet(net).eval()
    parameters = sum(q.numel() for q in model.parameters())
    if parameters != expected:
        sys.exit(f"onnx-export.py: the peer has {parameters} parameters, the card {expected}: the architectures differ")

    class Wrapped(torch.nn.Module):
        """UNet2DModel's forward returns a dataclass; ONNX wants a tensor."""

        def __init__(self, unet):
            super().__init__()
            self.unet = unet

        def forward(self, sample, timestep):
            return self.unet(sample, timestep).sample

    wrapped = Wrapped(model).eval()
    b = 2
    sample = torch.randn(b, c, h, w)
    timestep = torch.full((b,), 500.0)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with torch.no_grad():
        reference = wrapped(sample, timestep).numpy()
        torch.onnx.export(
            wrapped,
            (sample, timestep),
            args.out,
            input_names=["sample", "timestep"],
            output_names=["out"],
            dynamic_axes={"sample": {0: "batch"}, "timestep": {0: "batch"}, "out": {0: "batch"}},
            opset_version=args.opset,
            do_constant_folding=True,
        )

    # The batch-2 input and torch's output, for bench/browser/ort.test.mjs to replay in ORT.
    reference = dict(shape=[b, c, h, w], sample=sample.flatten().tolist(), timestep=timestep.tolist(), out=reference.flatten().tolist())
    with open(os.path.splitext(args.out)[0] + ".reference.json", "w") as f:
        json.dump(reference, f)

    max_abs_diff = None
    try:
        import onnxruntime  # noqa: F401  (optional: not in bench/setup.sh)

        session = onnxruntime.InferenceSession(args.out, providers=["CPUExecutionProvider"])
        out = session.run(["out"], {"sample": sample.numpy(), "timestep": timestep.numpy()})[0]
        max_abs_diff = float(abs(out.flatten() - reference["out"]).max())
    except ImportError:
        pass

    print(json.dumps(dict(onnx=os.path.relpath(args.out), bytes=os.path.getsize(args.out), parameters=parameters, opset=args.opset, max_abs_diff=max_abs_diff)))


if __name__ == "__main__":
    main()
