#!/usr/bin/env bash
# DDP smoke run on a GPU host: `tuneserve train --nproc-per-node N` with NCCL, one rank per GPU (N = the
# GPUs torch sees, at most 2), on the packaged all-MiniLM-L6-v2 and the demo sentiment data; then the
# same with one process for comparison (on a 1-GPU host, only that one). Prints one JSON line per run: processes, backend, device,
# precision, effective batch size, examples/s, accuracy, seconds.
#
# Usage: scripts/gpu_check_ddp.sh [EPOCHS]   (from the repository root, after `make install`; ~2 min)
set -euo pipefail

epochs="${1:-2}"
py=.venv/bin/python
gpus="$("$py" -c 'import torch; print(torch.cuda.device_count())')"
if [[ "$gpus" -lt 1 ]]; then
  echo "no CUDA device: this check needs a GPU" >&2
  exit 1
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >&2 || true
nproc=$(( gpus >= 2 ? 2 : 1 ))
data=core/pipeline/demo_data/sentiment
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

run() {  # run PROCESSES PER_PROCESS_BATCH
  local n="$1" batch="$2" out="$work/out-$1"
  local started=$SECONDS
  .venv/bin/tuneserve --log-format json train --task classification \
    --train "$data/train.tsv" --validation "$data/validation.tsv" --output "$out" \
    --epochs "$epochs" --batch-size "$batch" --device cuda --nproc-per-node "$n" \
    >"$work/stdout-$n" 2>"$work/stderr-$n" || { tail -c 4000 "$work/stderr-$n" >&2; exit 1; }
  "$py" - "$out/training.json" "$n" $((SECONDS - started)) <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(json.dumps({
    "processes": int(sys.argv[2]), "world_size": r["world_size"],
    "backend": "nccl" if r["world_size"] > 1 else "none",
    "device": r["device"], "precision": r["precision"],
    "effective_batch_size": r["effective_batch_size"], "learning_rate": r["learning_rate"],
    "examples_per_second": r["examples_per_second"], "accuracy": r["metrics"].get("accuracy"),
    "train_seconds": r["seconds"], "wall_seconds": int(sys.argv[3]), "ranks": r["ranks"],
}))
PY
}

# Same effective batch size (32) in both runs.
run 1 32
if [[ "$nproc" -eq 2 ]]; then
  run 2 16
else
  echo "one GPU: 2 NCCL ranks need 2 GPUs (one each); only the 1-process run above was made" >&2
fi
