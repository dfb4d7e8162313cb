#!/usr/bin/env bash
# The GPU checks of the CUDA engine in one device call, from the repository root, with build/
# carried from the CPU machine (see docs/CUDA_ENGINE.md):
#   tests/gpu/device_check.sh tests      every GPU test (~2-4 min)
#   tests/gpu/device_check.sh sanitize   compute-sanitizer memcheck on the [sanitize] tests, racecheck
#                                        on the kernels with shared memory ([bn], [classifier]),
#                                        initcheck on the ResNet-8 model test (~3-8 min)
#   tests/gpu/device_check.sh runtime    the programs on the device: run path without LD_LIBRARY_PATH,
#                                        library versions and ResNet-110 planning time (sd_bench
#                                        --verbose, a few steps), a time-limited sd_train (~2 min)
#   tests/gpu/device_check.sh bench      every kernel variant timed at the network's shapes
#                                        (build/bin/sd_kernel_bench: µs, GB/s, share of 4.8 TB/s; ~10 s)
#   tests/gpu/device_check.sh apps       sd_train --device cuda:0 (and the one-line error for a GPU
#                                        number not present), a tiny sd_sweep with its report (~1 min)
#   tests/gpu/device_check.sh fast       the fast-path measurement (docs/PERFORMANCE.md; ≤ 9¾ min, the
#                                        budget below): first, alone, which cuDNN algorithms capture
#                                        into a conditional body ("[capture_candidates]", ~1 min), the
#                                        probe of cuDNN's fused conv + BN engines (sd_fusion_probe,
#                                        ≤ 75 s), then the other GPU tests (graph == eager among them),
#                                        sd_bench --matrix on ResNet-110: every --exec × --precision ×
#                                        --layout × --bn-variant × --wgrad-stream in one process, one
#                                        row each (refused ones say why), one fp32 eager nchw run with
#                                        --phases, and PyTorch beside them
#   tests/gpu/device_check.sh all        all of them but fast
# Logs go to $OUT (the device tool brings them back) or /tmp/sd-gpu-out; the summary prints last.
set -u
# From the repository root wherever the checkout lies (the device's path differs from this
# machine's: ctest's files hold absolute paths, so the binary is run directly, by relative path).
cd "$(dirname "$0")/../.." || exit 2
mode=${1:-all}
out=${OUT:-/tmp/sd-gpu-out}
mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/build/extra-libs:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
bin=build/bin/sd_gpu_tests
summary="$out/summary.txt"
: >"$summary"
note() { echo "$*" | tee -a "$summary"; }

nvidia-smi -L 2>&1 | tee "$out/device.txt"
ldd "$bin" >"$out/ldd.txt" 2>&1
if grep -q "not found" "$out/ldd.txt"; then
  note "missing libraries:"; grep "not found" "$out/ldd.txt" | tee -a "$summary"
  exit 2
fi

if [ "$mode" = tests ] || [ "$mode" = all ]; then
  timeout 420 "$bin" --durations yes >"$out/tests.txt" 2>&1
  note "sd_gpu_tests rc=$?"
  grep -E "^SKIPPED|test cases|assertions" "$out/tests.txt" | sort | uniq -c | tee -a "$summary"
  grep -E "^(cuda:|cuDNN algorithms|  conv|CudaResNet|ResNet-|launches|stage|gradients|parameter updates|momentum)" \
    "$out/tests.txt" | head -60 >>"$summary"
  grep -B3 -A12 "FAILED" "$out/tests.txt" | head -150 >"$out/failures.txt"
fi

if [ "$mode" = fast ]; then
  # Every convolution candidate of ResNet-110 × direction × precision × batch (128, 72, 16, 8)
  # captured cold into an IF/ELSE body, launched gate open and closed: one line each (~700 expected,
  # printed as they are known, so a timeout keeps what ran) in capture_candidates.txt; the summary
  # gets the counts, the node types found in the bodies and the first lines not captured+correct.
  cands="$out/capture_candidates.txt"
  timeout 90 "$bin" "[capture_candidates]" >"$cands" 2>&1
  note "capture candidates rc=$? ($(grep -c "^capture candidate: " "$cands") candidate lines)"
  grep -E "^capture candidates: [0-9]+ lines|test cases|assertions" "$cands" | tee -a "$summary"
  note "node types in the bodies (count, types):"
  grep "^capture candidate: " "$cands" | sed 's/.*: body \[\([^]]*\)\].*/\1/' | sort | uniq -c | sort -rn | head -12 >>"$summary"
  note "candidates not captured+correct (first 40; all in capture_candidates.txt):"
  grep "^capture candidate: " "$cands" | grep -v "| captured+correct" | cut -c1-300 | head -40 >>"$summary"
  # cuDNN's fused convolution + batch-norm engines (bench/fusion_probe): which exist for the network's
  # shapes, whether they match the unfused reference, their time beside the convolution alone. Lines
  # print as they are known (16-bit precisions first), so a timeout keeps what ran.
  timeout 75 build/bin/sd_fusion_probe --precisions fp16,bf16,fp32 --json "$out/fusion_probe.json" \
    >"$out/fusion_probe.txt" 2>&1
  note "sd_fusion_probe rc=$? ($(grep -c "^fusion " "$out/fusion_probe.txt") pattern lines)"
  grep -E "^(cuDNN|fusion )" "$out/fusion_probe.txt" | cut -c1-220 | head -70 >>"$summary"
  timeout 210 "$bin" "~[capture_candidates]" --durations yes >"$out/tests.txt" 2>&1
  note "sd_gpu_tests rc=$?"
  grep -E "^SKIPPED|test cases|assertions" "$out/tests.txt" | sort | uniq -c | tee -a "$summary"
  grep -E "^(ResNet-8 step|closed block in graph mode|launches|stage)" "$out/tests.txt" | head -20 >>"$summary"
  grep -B3 -A12 "FAILED" "$out/tests.txt" | head -150 >"$out/failures.txt"
  # Every combination of the step's settings, one row each, in one sd_bench process (the data made
  # once, the convolution plans reused across the rows of one precision × layout): --exec 2 ×
  # --precision 4 × --layout 2 × --bn-variant 2 × --wgrad-stream 2 = 64 rows, every one built (a row
  # the device refuses says "refused: <why>"). Rows print as they finish and the JSON is rewritten
  # after each, so a timeout keeps every row done.
  #
  # The budget. One device call runs at most 600 s, and `fast` is one call; its timeouts:
  #   capture candidates 90 + fusion probe 75 + GPU tests 210 + matrix 140 + phases 25
  #   + PyTorch 2 × 22 = 584 s, and ~5 s of nvidia-smi/ldd/greps: ≤ 589 s (9¾ min) of the ~13
  #   usable minutes a session has (15 less the machine's start), leaving ~3 min for a rerun of a
  #   part, not of the whole.
  # The matrix's 140 s, cut in repetitions per row, never in rows: ResNet-110 at batch 128, the
  # stochastic-depth mode only (full depth's ratio is the single run's question, not the matrix's),
  # 2 warm-up steps (the graph's instantiation among them) and 3 rounds of 5 steps, the median
  # round. Predicted steps (docs/PERFORMANCE.md): fp32 ≈ 30 ms, tf32 ≈ 15, bf16/fp16 ≈ 10; so a row
  # is 17 steps ≤ 0.5 s plus its model's construction (buffers, descriptors, ≤ 0.5 s) ≈ 1 s, and
  # each new precision × layout plans its convolutions once (cudnnFind on ~20 shape × direction
  # pairs, ≤ 10 s): 64 rows + 8 plannings ≈ 64 + 80 = 144 s, at the timeout: if it bites, the
  # fp16 rows last in the table are the ones cut, and the next session can run
  # `sd_bench --matrix --precisions fp16 ...` alone.
  if build/bin/sd_bench --help 2>/dev/null | grep -q -- "--matrix"; then
    timeout 140 build/bin/sd_bench --depth 110 --matrix --rounds 3 --steps 5 --warmup 2 \
      --out "$out/sd_bench-matrix.json" >"$out/sd_bench-matrix.txt" 2>&1
    note "sd_bench --matrix rc=$? ($(grep -cE "^(fp32|tf32|bf16|fp16) " "$out/sd_bench-matrix.txt") row lines, 64 × 2 expected: as done and in the final table)"
    # The final table (after the rows as they were done) and its verdict; a timeout leaves the rows.
    if grep -q "^fastest: " "$out/sd_bench-matrix.txt"; then
      awk '/^precision /{n++} n==2 && !/^wrote /' "$out/sd_bench-matrix.txt" | cut -c1-200 | tee -a "$summary"
    else
      grep -E "^(fp32|tf32|bf16|fp16) " "$out/sd_bench-matrix.txt" | cut -c1-200 | tee -a "$summary"
    fi
  else
    note "sd_bench has no --matrix in this build: the matrix not measured"
  fi
  # Where the step's time goes (--phases: eager, CUDA events per phase), once: fp32 eager nchw, both
  # modes, short rounds (the matrix has the step times; this run has the split and the SD/full ratio).
  timeout 25 build/bin/sd_bench --depth 110 --phases --rounds 1 --steps 20 --warmup 5 \
    --out "$out/sd_bench-phases.json" >"$out/sd_bench-phases.txt" 2>&1
  note "sd_bench --phases rc=$?"
  grep -E "^(stochastic depth|full depth|speed-up)" "$out/sd_bench-phases.txt" | tee -a "$summary"
  grep -A10 "^phases" "$out/sd_bench-phases.txt" | tee -a "$summary"
  for tf32 in "" "--no-tf32"; do
    name="pytorch${tf32:+-no-tf32}"
    timeout 22 python3 bench/pytorch_bench.py --depth 110 --rounds 3 --steps 30 --warmup 10 $tf32 \
      --out "$out/$name.json" >"$out/$name.txt" 2>&1
    note "$name rc=$?"
    tail -4 "$out/$name.txt" | tee -a "$summary"
  done
fi

if [ "$mode" = bench ] || [ "$mode" = all ]; then
  timeout 120 build/bin/sd_kernel_bench --json "$out/kernel_bench.json" >"$out/kernel_bench.txt" 2>&1
  note "sd_kernel_bench rc=$?"
  cat "$out/kernel_bench.txt" >>"$summary"
fi

if [ "$mode" = sanitize ] || [ "$mode" = all ]; then
  sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  # --print-limit keeps each log small enough to come back from the device (a systematic fault
  # would otherwise print thousands of reports with backtraces); the exit code still counts all.
  # Each summary line says how many reports name one of our kernels (sd::cuda::…) and how many are
  # CUDA API errors ("Program hit …"), so that reports from inside cuDNN/cuBLAS are told apart.
  san() { timeout "$1" "$sanitizer" --print-limit 100 --error-exitcode 9 "${@:2}"; }
  ours() { echo "$(grep -cE "^=+ +at .*sd::cuda::" "$1") in sd::cuda kernels, $(grep -c "Program hit" "$1") API errors"; }
  san 300 --tool memcheck "$bin" "[sanitize]" >"$out/memcheck.txt" 2>&1
  note "memcheck rc=$? ($(grep -c "Invalid\|Error" "$out/memcheck.txt") error lines; $(ours "$out/memcheck.txt"))"
  tail -3 "$out/memcheck.txt" | tee -a "$summary"
  san 180 --tool racecheck "$bin" "[bn],[classifier]" >"$out/racecheck.txt" 2>&1
  note "racecheck rc=$? ($(ours "$out/racecheck.txt"))"
  tail -3 "$out/racecheck.txt" | tee -a "$summary"
  # Reads of device memory never written (the engine writes everything before reading it; reports
  # from inside cuDNN, if any, are cuDNN's own: cudnnFind* measures on buffers it allocates itself).
  san 180 --tool initcheck "$bin" "[model][sanitize]" >"$out/initcheck.txt" 2>&1
  note "initcheck rc=$? ($(ours "$out/initcheck.txt"))"
  tail -3 "$out/initcheck.txt" | tee -a "$summary"
fi
if [ "$mode" = runtime ] || [ "$mode" = all ]; then
  # The run path must find cuBLAS and cuDNN on a standard install, LD_LIBRARY_PATH unset.
  env -u LD_LIBRARY_PATH ldd build/bin/sd_train >"$out/ldd-plain.txt" 2>&1
  note "sd_train without LD_LIBRARY_PATH: $(grep -c "not found" "$out/ldd-plain.txt") libraries not found"
  grep -E "cublas|cudnn|libz|not found" "$out/ldd-plain.txt" | tee -a "$summary"
  # Versions (and their warning), planning time of ResNet-110 and its reuse by the second model.
  timeout 300 build/bin/sd_bench --verbose --depth 110 --steps 20 --rounds 1 --warmup 5 \
    --out "$out/bench.json" >"$out/bench.txt" 2>&1
  note "sd_bench rc=$?"
  grep -E "warning|^cuda:|cuDNN algorithms|planning|speed-up|^(stochastic|full)" "$out/bench.txt" | tee -a "$summary"
  # A slice: the time limit must stop the run (status 75) within its budget, checkpoint written.
  start=$(date +%s.%N)
  timeout 200 build/bin/sd_train --depth 110 --synthetic 20000 --epochs 50 --time-limit 90 \
    --out /tmp/sd-slice >"$out/slice.txt" 2>&1
  rc=$?
  note "sd_train --time-limit 90: rc=$rc (75 expected) after $(awk "BEGIN { print $(date +%s.%N) - $start }") s"
  grep -E "^epoch|time limit|stopped|planned" "$out/slice.txt" | tail -6 | tee -a "$summary"
  ls -l /tmp/sd-slice | tee -a "$summary"
fi

if [ "$mode" = apps ] || [ "$mode" = all ]; then
  # The apps on the GPU: ResNet-8 on generated images, so no data needs staging.
  data="--synthetic 2000 --batch-size 128"
  rm -rf /tmp/sd-apps && mkdir -p /tmp/sd-apps
  timeout 120 build/bin/sd_train --depth 8 $data --epochs 2 --device cuda:0 --out /tmp/sd-apps/train >"$out/apps.txt" 2>&1
  note "sd_train --device cuda:0 rc=$?"
  tail -3 "$out/apps.txt" | tee -a "$summary"
  head -1 /tmp/sd-apps/train/metrics.jsonl | grep -o '"conv1_grad_abs_mean":[^,]*' | tee -a "$summary"
  n=$(nvidia-smi -L 2>/dev/null | grep -c "^GPU")
  build/bin/sd_train --depth 8 $data --epochs 1 --device "cuda:$n" --out /tmp/sd-apps/none 2>&1 | tee -a "$summary"
  timeout 240 build/bin/sd_sweep --out /tmp/sd-apps/sweep --seeds 1,2 --depths 8 --devices cuda:0 \
    --report /tmp/sd-apps/sweep/REPORT.md -- $data --epochs 2 >>"$out/apps.txt" 2>&1
  note "sd_sweep --devices cuda:0 rc=$?"
  cp /tmp/sd-apps/sweep/sweep.md /tmp/sd-apps/sweep/REPORT.md "$out/" 2>/dev/null
  grep -E "^- (device|NVIDIA)" /tmp/sd-apps/sweep/REPORT.md | tee -a "$summary"
fi

echo "---- summary"
cat "$summary"
