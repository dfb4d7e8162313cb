"""The stochastic-depth ResNet-(6N+2) in PyTorch with sdnet's tensor names, so that an sdnet
checkpoint (safetensors) loads with load_state_dict. Shared by pytorch_eval.py and pytorch_bench.py.

Block: out = ReLU(shortcut(x) + gate * bn2(conv2(ReLU(bn1(conv1(x)))))); the first block of stages 1
and 2 has stride 2 (in conv1) and the "option A" shortcut: 2x2 average pool, then zero channels
appended. Training: a closed gate skips the branch entirely (nothing computed). Evaluation: every
block runs with its residual scaled by p_l. Any depth 6N+2 (110, 152 for SVHN, 1202) and any class
count (10 for CIFAR-10 and SVHN, 100 for CIFAR-100): the classifier is the only layer it sizes.
"""
import json
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F


def load_checkpoint(path):
    """(tensors by name, metadata) of a safetensors file: with the safetensors package when present,
    else with a reader of the format itself (8-byte little-endian header length, JSON header, data)."""
    try:
        from safetensors import safe_open
        from safetensors.torch import load_file
        with safe_open(path, framework="pt") as f:
            return load_file(path), f.metadata()
    except ImportError:
        pass
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = bytearray(raw[8 + n:])
    tensors = {}
    for name, t in header.items():
        assert t["dtype"] == "F32", f"{name}: dtype {t['dtype']}"
        begin, end = t["data_offsets"]
        tensors[name] = torch.frombuffer(data, dtype=torch.float32, offset=begin,
                                         count=(end - begin) // 4).reshape(t["shape"]).clone()
    return tensors, meta


def survival_probabilities(num_blocks, death_mode, death_rate):
    # As engine/core/gates.cpp: float(1 - (l / L) * rate) for lin_decay, float(1 - rate) for uniform.
    ps = []
    for l in range(1, num_blocks + 1):
        drop = l / num_blocks * death_rate if death_mode == "lin_decay" else death_rate
        ps.append(float(torch.tensor(1.0 - drop, dtype=torch.float32)))
    return ps


class Block(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.stride, self.pad = stride, c_out - c_in
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out, eps=1e-5, momentum=0.1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out, eps=1e-5, momentum=0.1)

    def shortcut(self, x):
        if self.stride == 1:
            return x
        x = F.avg_pool2d(x, 2, 2)
        return F.pad(x, (0, 0, 0, 0, 0, self.pad))  # new channels after the old ones, zero

    def branch(self, x):
        return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))


def check_shape(depth, classes):
    """Raises ValueError, one line, for a depth that is not 6N+2 or fewer than 2 classes."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth {depth}: not 6N+2 with N >= 1 (8, 14, ..., 110, 152, 1202)")
    if classes < 2:
        raise ValueError(f"classes {classes}: a classifier needs at least 2")


class ResNet(nn.Module):
    def __init__(self, depth=110, death_mode="lin_decay", death_rate=0.5, classes=10):
        super().__init__()
        check_shape(depth, classes)
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16, eps=1e-5, momentum=0.1)
        widths = [16, 32, 64]
        self.stages = nn.ModuleList()
        for s, w in enumerate(widths):
            blocks = [Block(widths[s - 1] if (s > 0 and b == 0) else w, w, 2 if (s > 0 and b == 0) else 1)
                      for b in range(n)]
            self.stages.append(nn.ModuleList(blocks))
        self.fc = nn.Linear(64, classes)
        self.blocks = [b for stage in self.stages for b in stage]
        self.survival = survival_probabilities(len(self.blocks), death_mode, death_rate)

    def forward(self, x, gates=None):
        """gates: list of bools, one per block (training); None: evaluation, residuals scaled by p_l."""
        x = F.relu(self.bn1(self.conv1(x)))
        for l, block in enumerate(self.blocks):
            if gates is None:
                x = F.relu(block.shortcut(x) + self.survival[l] * block.branch(x))
            elif gates[l]:
                x = F.relu(block.shortcut(x) + block.branch(x))
            else:
                x = block.shortcut(x)  # skipped: no branch computed (x >= 0 already, ReLU is a no-op)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)
