#!/usr/bin/env python3
"""The PyTorch peer of sd_bench: the same network and recipe (SGD, Nesterov momentum 0.9, weight
decay 1e-4, lr 0.1, batch 128), data already on the GPU, gates drawn on the host and skipped blocks
not computed. Times the training step with stochastic depth and with full depth: warm-up excluded,
median of --rounds rounds of --steps steps, scaled to a 45 000-image epoch. Prints a table, writes
JSON in sd_bench's shape.

  python3 bench/pytorch_bench.py [--depth 110|152|1202] [--classes 10|100] [--steps 352] [--rounds 5]
                                 [--no-tf32] [--out FILE]
"""
import argparse
import json
import os
import statistics
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError as missing:  # one line, not a traceback: what to install
    sys.exit(f"pytorch_bench.py: error: needs torch (python3 -m pip install torch): {missing}")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sdnet_torch import ResNet, check_shape  # noqa: E402

EPOCH_IMAGES = 45000


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def time_mode(args, death_rate, images, labels):
    torch.manual_seed(args.seed)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model = ResNet(args.depth, args.death_mode, death_rate, args.classes).to(args.device).train()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    survival = torch.tensor(model.survival)
    gen = torch.Generator().manual_seed(args.seed)  # the same gates and batches in both modes' step order
    n = images.shape[0]

    def step(s):
        gates = (torch.rand(len(survival), generator=gen) < survival).tolist()  # on the host
        i = (s * args.batch_size) % (n - args.batch_size + 1)
        x, y = images[i:i + args.batch_size], labels[i:i + args.batch_size]
        with torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.bf16):
            loss = F.cross_entropy(model(x, gates), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return sum(gates)

    for s in range(args.warmup):
        step(s)
    sync(args.device)
    rounds, active = [], 0
    for r in range(args.rounds):
        t0 = time.perf_counter()
        for s in range(args.steps):
            active += step(args.warmup + r * args.steps + s)
        sync(args.device)
        rounds.append(time.perf_counter() - t0)
    step_s = statistics.median(rounds) / args.steps
    return {"mode": "stochastic depth" if death_rate > 0 else "full depth", "death_rate": death_rate,
            "expected_active_blocks": float(sum(model.survival)),
            "mean_active_blocks": active / (args.rounds * args.steps), "round_seconds": rounds,
            "step_seconds": step_s, "epoch_seconds": step_s * EPOCH_IMAGES / args.batch_size,
            "images_per_second": args.batch_size / step_s,
            "peak_device_bytes": torch.cuda.max_memory_allocated() if args.device == "cuda" else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", type=int, default=110, help="6N+2: 110 (CIFAR), 152 (SVHN), 1202")
    ap.add_argument("--classes", type=int, default=10, help="10 (CIFAR-10, SVHN) or 100 (CIFAR-100)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--death-mode", default="lin_decay")
    ap.add_argument("--death-rate", type=float, default=0.5)
    ap.add_argument("--steps", type=int, default=352)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--seed", type=int, default=31415)
    ap.add_argument("--no-tf32", action="store_true", help="exact fp32 convolutions, as sdnet computes")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--out", default="runs/bench/pytorch.json")
    ap.add_argument("--device", default="cuda", help="cuda; cpu only to check the script on a small --depth")
    ap.add_argument("--images", type=int, default=EPOCH_IMAGES, help="synthetic images on the device")
    args = ap.parse_args()
    try:
        check_shape(args.depth, args.classes)
    except ValueError as bad:
        ap.error(str(bad))
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = not args.no_tf32
    torch.backends.cuda.matmul.allow_tf32 = not args.no_tf32

    # Synthetic data of CIFAR's shape, normalised, on the device (the timing does not depend on it).
    g = torch.Generator(device=args.device).manual_seed(args.seed)
    images = torch.randn(args.images, 3, 32, 32, device=args.device, generator=g)
    if args.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, args.classes, (args.images,), device=args.device, generator=g)

    sd = time_mode(args, args.death_rate, images, labels)
    full = time_mode(args, 0.0, images, labels)
    blocks = 3 * ((args.depth - 2) // 6)
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    result = {"framework": f"PyTorch {torch.__version__}", "device": device_name,
              "depth": args.depth, "classes": args.classes, "batch_size": args.batch_size, "tf32": not args.no_tf32, "bf16": args.bf16,
              "channels_last": args.channels_last, "steps_per_round": args.steps, "rounds": args.rounds,
              "warmup_steps": args.warmup, "epoch_images": EPOCH_IMAGES, "stochastic_depth": sd, "full_depth": full,
              "ratio": full["epoch_seconds"] / sd["epoch_seconds"],
              "ideal_ratio": blocks / sd["expected_active_blocks"]}

    print(f"{result['framework']} on {result['device']}: ResNet-{args.depth}, {args.classes} classes, batch {args.batch_size}, "
          f"tf32 {result['tf32']}, bf16 {args.bf16}, channels-last {args.channels_last}")
    print(f"{'mode':<18} {'s / epoch':>10} {'ms / step':>10} {'images/s':>10} {'blocks/step':>12}")
    for r in (sd, full):
        print(f"{r['mode']:<18} {r['epoch_seconds']:>10.2f} {1e3 * r['step_seconds']:>10.2f} "
              f"{r['images_per_second']:>10.0f} {r['mean_active_blocks']:>12.2f}")
    print(f"speed-up of stochastic depth: {result['ratio']:.3f}x (ideal {result['ideal_ratio']:.3f}x)")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
