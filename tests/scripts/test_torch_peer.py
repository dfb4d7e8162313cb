#!/usr/bin/env python3
"""The PyTorch peer (bench/sdnet_torch.py, pytorch_bench.py, pytorch_eval.py) on the CPU at the
paper's other shapes: 100 classes, ResNet-152 and ResNet-1202. Skipped, visibly, without torch
(Debian: apt-get install python3-torch)."""
import json
import os
import struct
import subprocess
import sys
import tempfile

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench")
FAILURES = []


def check(ok, what, detail=""):
    if not ok:
        FAILURES.append(what)
        print(f"FAILED: {what}\n{detail}", file=sys.stderr)


def run(script, args):
    r = subprocess.run([sys.executable, os.path.join(BENCH, script)] + args, capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout + r.stderr


def write_checkpoint(path, model, meta):
    """An sdnet-style safetensors file of `model` (F32 tensors, metadata, normalization.mean)."""
    import torch
    tensors = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    tensors["normalization.mean"] = torch.full((3, 32, 32), 120.0)
    header, blobs, offset = {"__metadata__": meta}, [], 0
    for name, t in tensors.items():
        data = t.detach().float().contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main():
    try:
        import torch
    except ImportError:
        print("SKIPPED: torch is not installed (apt-get install python3-torch): the PyTorch peer not checked")
        return 0
    sys.path.insert(0, BENCH)
    from sdnet_torch import ResNet

    torch.manual_seed(1)
    # The classifier is sized by the class count; depth 152 has 3 × 25 blocks, 1202 has 3 × 200.
    m152 = ResNet(152, classes=100)
    check(tuple(m152.fc.weight.shape) == (100, 64) and len(m152.blocks) == 75, "ResNet-152 with 100 classes")
    check("stages.2.24.conv2.weight" in m152.state_dict(), "sdnet's tensor names at depth 152")
    m1202 = ResNet(1202).eval()
    check(len(m1202.blocks) == 600 and abs(m1202.survival[-1] - 0.5) < 1e-7, "ResNet-1202: 600 blocks, p_L = 0.5")
    with torch.no_grad():
        out = m1202(torch.randn(1, 3, 32, 32))
    check(tuple(out.shape) == (1, 10) and bool(torch.isfinite(out).all()), "ResNet-1202 evaluates", str(out))
    for depth, classes, why in ((150, 10, "depth 150"), (152, 1, "classes 1")):
        try:
            ResNet(depth, classes=classes)
            check(False, f"{why} refused")
        except ValueError as e:
            check(str(e).startswith(why), f"{why}: one line", str(e))

    with tempfile.TemporaryDirectory(prefix="sdnet-torch-") as tmp:
        out_json = os.path.join(tmp, "bench.json")
        rc, out = run("pytorch_bench.py", ["--device", "cpu", "--depth", "152", "--classes", "100", "--batch-size", "2",
                                           "--images", "4", "--steps", "1", "--rounds", "1", "--warmup", "1",
                                           "--out", out_json])
        check(rc == 0 and "ResNet-152, 100 classes" in out, "pytorch_bench.py --depth 152 --classes 100", out)
        if rc == 0:
            with open(out_json) as f:
                j = json.load(f)
            check(j["depth"] == 152 and j["classes"] == 100 and j["full_depth"]["mean_active_blocks"] == 75,
                  "its JSON", json.dumps(j))
        rc, out = run("pytorch_bench.py", ["--device", "cpu", "--depth", "1201"])
        check(rc == 2 and "depth 1201: not 6N+2" in out.splitlines()[-1], "pytorch_bench.py refuses depth 1201", out)

        # pytorch_eval.py: the class count from the checkpoint, CIFAR-100's test.bin (fine labels).
        model = ResNet(8, classes=100).eval()
        ckpt = os.path.join(tmp, "c100.safetensors")
        write_checkpoint(ckpt, model, {"depth": "8", "death_mode": "lin_decay", "death_rate": "0.5", "epoch": "1",
                                       "normalization.std": "64"})
        folder = os.path.join(tmp, "cifar-100-binary")
        os.makedirs(folder)
        images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            pred = model((images.float() - 120.0) / 64.0).argmax(1).tolist()
        fine = [pred[0], (pred[1] + 1) % 100, pred[2]]  # one wrong of three
        with open(os.path.join(folder, "test.bin"), "wb") as f:
            for i in range(3):
                f.write(bytes([7, fine[i]]) + images[i].numpy().tobytes())
        rc, out = run("pytorch_eval.py", ["--checkpoint", ckpt, "--data-dir", tmp, "--device", "cpu"])
        check(rc == 0 and "100 classes, cifar100" in out and "(1 of 3)" in out, "pytorch_eval.py on CIFAR-100", out)

    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed: {'; '.join(FAILURES)}", file=sys.stderr)
        return 1
    print("the PyTorch peer: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
