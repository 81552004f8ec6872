#!/usr/bin/env bash
# Validate tracks C, D, E and F (deep learning, scaling up, transformers, capstones) at a GPU tier on this machine
# and print each notebook's seconds and the figures it measured (AIFKIT_C03_THROUGHPUT,
# AIFKIT_D01_THROUGHPUT, AIFKIT_E01_TOKENS_PER_S and AIFKIT_E01_MFU, the tiny GPT's model FLOPs
# utilisation against the device's bf16 peak from facts.yml).
#
#   scripts/gpu-validate.sh [gpu|multi-gpu]        (make validate-gpu runs it with the venv)
#
# PYTHON picks the interpreter (default .venv/bin/python): one whose torch is a CUDA build. The
# report, the executed notebooks and the kernel logs land in build/validate-<tier>/.
set -euo pipefail
cd "$(dirname "$0")/.."
tier="${1:-gpu}"
python="${PYTHON:-.venv/bin/python}"
case "$tier" in
  gpu) need=1 ;;
  multi-gpu) need=2 ;;
  *) echo "gpu-validate: tier must be gpu or multi-gpu, not '$tier'" >&2; exit 2 ;;
esac
# A CPU build of torch would run the GPU sizes on the CPU and pass: refuse that up front.
"$python" - "$tier" "$need" <<'PY'
import sys

import torch

tier, need = sys.argv[1], int(sys.argv[2])
seen = torch.cuda.device_count() if torch.cuda.is_available() else 0
if seen < need:
    sys.exit(
        f"gpu-validate: tier {tier} needs {need} CUDA GPU(s), torch {torch.__version__} sees "
        f"{seen}. Install the CUDA build of torch (README, 'On the factory') or set PYTHON."
    )
names = sorted({torch.cuda.get_device_name(i) for i in range(seen)})
print(f"gpu-validate: torch {torch.__version__}, {seen} GPU(s): {', '.join(names)}")
PY
status=0
"$python" -m aifkit validate courses/c0* courses/d0* courses/e0* courses/f0* --tier "$tier" --jobs 1 \
  --report "build/validate-$tier" || status=$?
# Track E's headline figures once more, on their own lines, for the note of a GPU run.
grep -ho 'AIFKIT_E01_[A-Z_]*=[^ ]*' "build/validate-$tier/report.txt" 2>/dev/null || true
exit "$status"
