#!/usr/bin/env python3
"""sd_train on the GPU engine without a GPU: the emulated-device build of sd_train (sd_train_emu)
trains one tiny epoch of ResNet-8 with --device cuda --precision bf16 --layout nhwc in graph
execution, and its run directory holds the epoch's record, the precision and layout in its config,
and an fp32 checkpoint. Usage: test_emulated_train.py SD_TRAIN_EMU"""
import json
import os
import subprocess
import sys
import tempfile


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "run")
        args = [binary, "--device", "cuda", "--precision", "bf16", "--layout", "nhwc", "--exec", "graph",
                "--depth", "8", "--synthetic", "256", "--subset", "32", "--batch-size", "16", "--epochs", "1",
                "--eval-subset", "16", "--out", out]
        env = dict(os.environ, SD_EMU_WORKERS="1")
        r = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        records = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
        assert len(records) == 1 and records[0]["epoch"] == 1, records
        for key in ("train_loss", "train_error", "validation_error", "test_error", "conv1_grad_abs_mean"):
            assert isinstance(records[0][key], (int, float)), (key, records[0])
        assert "skipped_steps" not in records[0], records[0]  # bf16 has no loss scale
        config = json.load(open(os.path.join(out, "config.json")))
        text = json.dumps(config)
        assert '"bf16"' in text and '"nhwc"' in text, text
        assert os.path.exists(os.path.join(out, "last.safetensors"))
    print("ok")


if __name__ == "__main__":
    main()
