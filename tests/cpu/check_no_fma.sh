#!/bin/sh
# Usage: check_no_fma.sh OFF.o FAST.o — the same source compiled for an FMA target with
# -ffp-contract=off (the project's flag) and with contraction allowed. Passes when the first holds no
# fused multiply-add instruction and the second does (so the check itself can fail).
set -eu
count() { objdump -d --no-show-raw-insn "$1" | grep -cE '\svfn?m(add|sub)[0-9]{3}' || true; }
off=$(count "$1")
fast=$(count "$2")
echo "fused multiply-adds: $off with -ffp-contract=off, $fast with contraction allowed"
[ "$off" -eq 0 ] && [ "$fast" -gt 0 ]
