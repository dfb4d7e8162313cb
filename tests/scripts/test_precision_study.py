#!/usr/bin/env python3
"""scripts/precision-study on a tiny budget (ResNet-8, generated images, one epoch, two precisions
and two seeds, two runs at a time): every run trained and scored, each with its own CPU time, the report's table and JSON, and a second invocation
that trains nothing again. Usage: test_precision_study.py BIN_DIR"""
import json
import os
import subprocess
import sys
import tempfile

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "precision-study")


def main():
    bin_dir = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        args = [sys.executable, SCRIPT, "--synthetic", "256", "--depth", "8", "--subset", "64", "--batch-size", "32",
                "--epochs", "1", "--eval-subset", "10", "--final-eval-subset", "20", "--precisions", "fp32,bf16",
                "--seeds", "1,2", "--nice", "0", "--jobs", "2", "--bin", bin_dir, "--out", tmp]
        first = subprocess.run(args, capture_output=True, text=True, timeout=300)
        assert first.returncode == 0, first.stdout + first.stderr
        record = json.load(open(os.path.join(tmp, "study.json")))
        assert sorted(record["runs"]) == ["bf16-s1", "bf16-s2", "fp32-s1", "fp32-s2"], record["runs"].keys()
        for name, r in record["runs"].items():
            assert 0 <= r["test_error"] <= 1 and r["test_images"] == 20, (name, r)
            assert r["skipped_steps"] == 0 and r["train_cpu_seconds"] > 0 and r["eval_cpu_seconds"] > 0, (name, r)
        assert record["summary"]["fp32"]["within_fp32_spread"] is None
        assert record["summary"]["bf16"]["within_fp32_spread"] in (True, False)
        fp32, bf16 = record["summary"]["fp32"], record["summary"]["bf16"]
        assert abs(bf16["mean_minus_fp32"] - (bf16["mean"] - fp32["mean"])) < 1e-12, bf16
        # Welch's standard error of the difference, two runs a side: sqrt(s_a²/2 + s_b²/2).
        assert abs(bf16["standard_error"] ** 2 - (bf16["std"] ** 2 + fp32["std"] ** 2) / 2) < 1e-12, bf16
        table = open(os.path.join(tmp, "study.md")).read()
        assert table.startswith("| precision |") and "| bf16 |" in table and "fp32's spread" in table and "mean − fp32's" in table, table
        def started(program):
            return sum(l.startswith("=== ") and program in l for l in open(os.path.join(tmp, "study.log")))
        assert started("sd_train") == 4 and started("sd_eval") == 4, (started("sd_train"), started("sd_eval"))
        # Resumable: nothing is trained or scored again.
        second = subprocess.run(args, capture_output=True, text=True, timeout=300)
        assert second.returncode == 0, second.stdout + second.stderr
        assert json.load(open(os.path.join(tmp, "study.json")))["runs"] == record["runs"]
        assert started("sd_train") == 4 and started("sd_eval") == 4
    print("precision-study: tiny budget ok")


if __name__ == "__main__":
    main()
