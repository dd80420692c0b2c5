#!/usr/bin/env bash
# One script for the day a GPU is lent: does minitx train, generate, translate and run DDP on CUDA,
# and how fast? Prints tokens/s (sentences/s for translation) and MFU. Needs a CUDA GPU and the
# package installed (`make install`); runs from the repository root in ~5 minutes, writes only
# under $OUT (default: a fresh temporary directory).
#
#     bash bench/gpu_check.sh                 # everything
#     OUT=/tmp/gpu bash bench/gpu_check.sh    # keep the runs somewhere
#
# Every step is one command line a reader can rerun by hand; a failing step is reported and the
# script goes on, and its exit code is the number of steps that failed.
set -u
PY=${PYTHON:-python}
OUT=${OUT:-$(mktemp -d)}
GPUS=$($PY -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
failed=0

step() {  # step NAME COMMAND...: run it, show its tail, count a failure
    local name=$1; shift
    echo; echo "== $name"; echo "\$ $*"
    if ! "$@" > "$OUT/$name.log" 2>&1; then
        failed=$((failed + 1)); echo "FAILED ($name): last lines of $OUT/$name.log"
    fi
    tail -n 15 "$OUT/$name.log"
}

echo "minitx GPU check into $OUT"
$PY -c "import torch; print('torch', torch.__version__, '| CUDA', torch.version.cuda, '|', \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU', '| bf16', \
torch.cuda.is_available() and torch.cuda.is_bf16_supported())"
if [ "$GPUS" = 0 ]; then echo "no CUDA GPU visible: nothing to check"; exit 1; fi

# what --dtype auto picks here, and the measured matmul peak that MFU is relative to
step info $PY -m minitx info --device
$PY -c "from minitx.device import auto_dtype; c = auto_dtype('cuda'); print('--dtype auto:', c.dtype, '-', c.reason)"

# 1. training: the built-in stories, the default preset on CUDA (auto dtype: bf16 autocast), then
#    the GPU shape ("medium") in bf16 eager and compiled (torch.compile, its CUDA kernels)
step data $PY -m minitx data grammar --bytes 2000000 --seed 0 --out "$OUT/stories.txt" --force
step train-small $PY -m minitx train "$OUT/stories.txt" --out "$OUT/small" --device cuda --force --steps 600
step train-medium $PY -m minitx train "$OUT/stories.txt" --out "$OUT/medium" --preset medium --device cuda \
    --steps 300 --eval-every 100 --force --no-compile
step train-medium-compiled $PY -m minitx train "$OUT/stories.txt" --out "$OUT/medium-compiled" --preset medium \
    --device cuda --steps 300 --eval-every 100 --force --compile
step train-fp32 $PY -m minitx train "$OUT/stories.txt" --out "$OUT/fp32" --device cuda --dtype float32 --steps 300 \
    --force

# 2. generation on the GPU: fp32 and the KV cache (tokens/s on the last line), batch 1 and batch 8
step generate $PY -m minitx generate "$OUT/small" --device cuda --max-new-tokens 500 --seed 0
step generate-batch $PY -m minitx generate "$OUT/small" --device cuda --max-new-tokens 200 --num-samples 8 --seed 0

# 3. translation: the translate preset trained briefly on the built-in pairs, then greedy decoding
step pairs $PY -m minitx data translation --pairs 10000 --seed 0 --out "$OUT/pairs.jsonl" --force
step train-translate $PY -m minitx train "$OUT/pairs.jsonl" --preset translate --out "$OUT/translate" \
    --device cuda --steps 300 --force
printf 'the small cat sees a red ball.\nthe old dog is in the house.\n' > "$OUT/sentences.txt"
step translate $PY -m minitx translate "$OUT/translate" --device cuda --file "$OUT/sentences.txt"

# 4. DDP over NCCL: every GPU (at least 2 wanted), tokens/s and MFU per GPU count
if [ "$GPUS" -ge 2 ]; then
    step ddp-train $PY -m minitx train "$OUT/stories.txt" --out "$OUT/ddp" --device cuda --nproc "$GPUS" --steps 300 \
        --force
    step ddp-bench $PY bench/bench_ddp.py --device cuda --gpus "1,$GPUS" --preset medium --dtype bfloat16
else
    step ddp-bench $PY bench/bench_ddp.py --device cuda --gpus 1 --preset medium --dtype bfloat16
    echo "(one GPU: the NCCL all-reduce between GPUs is not exercised)"
fi

echo; echo "== done: $failed step(s) failed; logs in $OUT"
exit "$failed"
