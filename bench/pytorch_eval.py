#!/usr/bin/env python3
"""Scores an sdnet checkpoint with PyTorch: proves the safetensors format (names, shapes, layout,
normalisation) means what sdnet says it does. Prints the test error; with --compare, also checks it
against `sd_eval --json` output for the same checkpoint.

  python3 bench/pytorch_eval.py --checkpoint runs/X/best.safetensors --data-dir data/cifar-10-batches-bin \
      [--compare eval.json] [--device cuda]
"""
import argparse
import json
import os
import sys

try:
    import numpy as np
    import torch
except ImportError as missing:  # one line, not a traceback: what to install
    sys.exit(f"pytorch_eval.py: error: needs numpy and torch (python3 -m pip install numpy torch): {missing}")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sdnet_torch import ResNet, load_checkpoint  # noqa: E402


def load_test_set(data_dir):
    path = os.path.join(data_dir, "test_batch.bin")
    if not os.path.exists(path) and os.path.isdir(os.path.join(data_dir, "cifar-10-batches-bin")):
        path = os.path.join(data_dir, "cifar-10-batches-bin", "test_batch.bin")
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, 3073)
    return raw[:, 1:].reshape(-1, 3, 32, 32), raw[:, 0].astype(np.int64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data-dir", default="data/cifar-10-batches-bin")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--compare", help="sd_eval --json output for the same checkpoint")
    ap.add_argument("--tolerance", type=int, default=0, help="images the two may disagree on (default 0)")
    args = ap.parse_args()
    # Exact fp32, as sdnet evaluates: no TF32 anywhere.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False

    tensors, meta = load_checkpoint(args.checkpoint)
    model = ResNet(int(meta["depth"]), meta["death_mode"], float(meta["death_rate"]))
    state = {k: v for k, v in tensors.items() if not k.startswith("optimizer.") and k != "normalization.mean"}
    state.update({f"{name}.num_batches_tracked": torch.tensor(0) for name, m in model.named_modules()
                  if isinstance(m, torch.nn.BatchNorm2d)})
    model.load_state_dict(state, strict=True)
    model.to(args.device).eval()

    mean = tensors["normalization.mean"].to(args.device)  # [3, 32, 32], byte units
    std = float(meta["normalization.std"])
    images, labels = load_test_set(args.data_dir)
    errors = 0
    with torch.no_grad():
        for i in range(0, len(labels), args.batch_size):
            x = torch.from_numpy(images[i:i + args.batch_size]).to(args.device).float()
            pred = model((x - mean) / std).argmax(1).cpu().numpy()
            errors += int((pred != labels[i:i + args.batch_size]).sum())
    error = errors / len(labels)
    print(f"{args.checkpoint}: ResNet-{meta['depth']}, epoch {meta['epoch']}: "
          f"PyTorch test error {100 * error:.2f}% ({errors} of {len(labels)})")

    if args.compare:
        with open(args.compare) as f:
            theirs = json.load(f)["test"]
        their_errors = round(theirs["error"] * theirs["images"])
        diff = abs(their_errors - errors)
        verdict = "MATCH" if diff <= args.tolerance else "DIFFER"
        print(f"sd_eval test error {100 * theirs['error']:.2f}% ({their_errors} of {theirs['images']}): "
              f"{verdict} ({diff} images apart)")
        return 0 if diff <= args.tolerance else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
