#!/usr/bin/env python3
"""Scores an sdnet checkpoint with PyTorch: proves the safetensors format (names, shapes, layout,
normalisation) means what sdnet says it does. Prints the test error; with --compare, also checks it
against `sd_eval --json` output for the same checkpoint.

  python3 bench/pytorch_eval.py --checkpoint runs/X/best.safetensors --data-dir data/cifar-10-batches-bin \
      [--dataset cifar10|cifar100|svhn] [--compare eval.json] [--device cuda]

The class count comes from the checkpoint (its classifier's rows); the data set's test files are read
as published: CIFAR-10 test_batch.bin, CIFAR-100 test.bin (the fine label is the class), SVHN
test_32x32.mat (needs scipy; the digit 0 is labelled 10 there, 0 here). --dataset defaults to cifar100
for a checkpoint of 100 classes, else cifar10.
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


# Per data set: the folder fetch-data makes (accepted above the files too) and the test file in it.
TEST_FILES = {"cifar10": ("cifar-10-batches-bin", "test_batch.bin"), "cifar100": ("cifar-100-binary", "test.bin"),
              "svhn": ("svhn", "test_32x32.mat")}


def load_test_set(dataset, data_dir):
    """(images uint8 [N, 3, 32, 32], labels int64 [N]) of the data set's test files."""
    folder, name = TEST_FILES[dataset]
    path = os.path.join(data_dir, name)
    if not os.path.exists(path) and os.path.isdir(os.path.join(data_dir, folder)):
        path = os.path.join(data_dir, folder, name)
    if dataset == "svhn":
        try:
            from scipy.io import loadmat
        except ImportError as missing:
            sys.exit(f"pytorch_eval.py: error: SVHN's .mat files need scipy (apt-get install python3-scipy): {missing}")
        mat = loadmat(path)
        images = np.ascontiguousarray(mat["X"].transpose(3, 2, 0, 1))  # X[row, col, channel, image]
        labels = mat["y"].reshape(-1).astype(np.int64) % 10
        return images, labels
    label_bytes = 1 if dataset == "cifar10" else 2  # CIFAR-100: coarse label, fine label
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, label_bytes + 3072)
    return raw[:, label_bytes:].reshape(-1, 3, 32, 32), raw[:, label_bytes - 1].astype(np.int64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data-dir", default="data", help="the data set's folder, or the one above it")
    ap.add_argument("--dataset", choices=sorted(TEST_FILES), help="default: from the checkpoint's class count")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--compare", help="sd_eval --json output for the same checkpoint")
    ap.add_argument("--tolerance", type=int, default=0, help="images the two may disagree on (default 0)")
    args = ap.parse_args()
    # Exact fp32, as sdnet evaluates: no TF32 anywhere.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False

    tensors, meta = load_checkpoint(args.checkpoint)
    classes = tensors["fc.weight"].shape[0]
    dataset = args.dataset or ("cifar100" if classes == 100 else "cifar10")
    model = ResNet(int(meta["depth"]), meta["death_mode"], float(meta["death_rate"]), classes)
    state = {k: v for k, v in tensors.items() if not k.startswith("optimizer.") and k != "normalization.mean"}
    state.update({f"{name}.num_batches_tracked": torch.tensor(0) for name, m in model.named_modules()
                  if isinstance(m, torch.nn.BatchNorm2d)})
    model.load_state_dict(state, strict=True)
    model.to(args.device).eval()

    mean = tensors["normalization.mean"].to(args.device)  # [3, 32, 32], byte units
    std = float(meta["normalization.std"])
    images, labels = load_test_set(dataset, args.data_dir)
    if labels.max() >= classes:
        sys.exit(f"pytorch_eval.py: error: {dataset}'s labels reach {labels.max()}, the checkpoint has {classes} classes")
    errors = 0
    with torch.no_grad():
        for i in range(0, len(labels), args.batch_size):
            x = torch.from_numpy(images[i:i + args.batch_size]).to(args.device).float()
            pred = model((x - mean) / std).argmax(1).cpu().numpy()
            errors += int((pred != labels[i:i + args.batch_size]).sum())
    error = errors / len(labels)
    print(f"{args.checkpoint}: ResNet-{meta['depth']}, {classes} classes, {dataset}, epoch {meta['epoch']}: "
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
