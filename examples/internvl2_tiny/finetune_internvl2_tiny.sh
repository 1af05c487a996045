#!/bin/bash
# InternVL2 fine-tuning at a tiny size on one CPU process, MindSpore, through the converted
# MindSpeed-MM: its own pretrain_internvl.py with the flags of upstream's
# examples/mindspore/internvl2/finetune_internvl2_2B.sh (`--ai-framework mindspore`), the sizes cut
# down in model.json/data.json and the multi-card settings dropped (each difference is listed in README.md).
#
# Run it after `source auto_convert_mm.sh` (or `source <workspace>/set_env.sh`):
#   bash examples/internvl2_tiny/finetune_internvl2_tiny.sh            # 20 steps, saves a checkpoint
#   RESUME=1 bash examples/internvl2_tiny/finetune_internvl2_tiny.sh   # loads it, trains 5 more steps
# Environment: WORK (default ./internvl2_tiny_run: images, conversations, tokenizer, configs,
# checkpoints, logs), TRAIN_ITERS (default 20), RESUME_ITERS (default 5), PRECISION (default none:
# float32, as MindSpore's CPU kernels lack bf16 Sigmoid; upstream's is --bf16), PYTHON (default python),
# MS_CONVERT_WORKSPACE (set by set_env.sh). Not meant to be sourced: it runs python and returns its exit status.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
workspace=${MS_CONVERT_WORKSPACE:?"run 'source auto_convert_mm.sh' (or source <workspace>/set_env.sh) first"}
mm="$workspace/MindSpeed-MM"
[ -f "$mm/pretrain_internvl.py" ] || { echo "$0: $mm/pretrain_internvl.py not found: is $workspace an mm workspace?" >&2; exit 2; }

WORK=${WORK:-$PWD/internvl2_tiny_run}
TRAIN_ITERS=${TRAIN_ITERS:-20}
RESUME_ITERS=${RESUME_ITERS:-5}
python=${PYTHON:-python}
if [ -n "${RESUME:-}" ] && [ ! -f "$WORK/ckpt/latest_checkpointed_iteration.txt" ]; then
    echo "$0: RESUME=1 but $WORK/ckpt has no checkpoint: run without RESUME first (same WORK)" >&2
    exit 2
fi
mkdir -p "$WORK/logs"
WORK=$(cd "$WORK" && pwd)

# 1. Images with conversations, tokenizer, data.json and model.json (upstream's 2B ones, cut down).
if [ ! -f "$WORK/model.json" ]; then
    "$python" "$here/build_data.py" "$WORK" "$mm"
fi

# 2. Fine-tuning. One process: no msrun; mindtorch makes single-process groups.
export CUDA_DEVICE_MAX_CONNECTIONS=1
export GLOG_v=${GLOG_v:-3}   # MindSpore: errors only
export MASTER_ADDR=localhost MASTER_PORT=${MASTER_PORT:-6000}
export RANK=0 LOCAL_RANK=0 WORLD_SIZE=1 LOCAL_WORLD_SIZE=1

TP=1
PP=1
CP=1
MBS=1
GRAD_ACC_STEP=2
DP=1
GBS=$((MBS * GRAD_ACC_STEP * DP))

GPT_ARGS="
    --tensor-model-parallel-size ${TP}
    --pipeline-model-parallel-size ${PP}
    --context-parallel-size ${CP}
    --micro-batch-size ${MBS}
    --global-batch-size ${GBS}
    --seq-length 256
    --tokenizer-type NullTokenizer
    --vocab-size 92553
    --position-embedding-type rope
    --rotary-base 100000
    --swiglu
    --no-masked-softmax-fusion
    --lr 1e-3
    --min-lr 0.0
    --lr-decay-style cosine
    --weight-decay 0.05
    --clip-grad 1.0
    --adam-beta1 0.9
    --adam-beta2 0.999
    --no-gradient-accumulation-fusion
    --use-distributed-optimizer
    ${PRECISION-}
    --use-flash-attn
    --use-fused-rotary-pos-emb
    --variable-seq-lengths
    --normalization RMSNorm
    --use-fused-rmsnorm
    --num-workers 0
"

MM_ARGS="
    --mm-data $WORK/data.json
    --mm-model $WORK/model.json
    --mm-tool ./mindspeed_mm/tools/tools.json
"

OUTPUT_ARGS="
    --log-interval 1
    --eval-interval 10000
    --eval-iters 0
    --save $WORK/ckpt
    --ckpt-format torch
"

# One schedule of TRAIN_ITERS + RESUME_ITERS steps (the learning rate's decay is a fraction of it),
# trained in two sittings: the first stops after TRAIN_ITERS (--exit-interval saves a checkpoint
# there), the second loads it and finishes. Megatron refuses a resume whose schedule differs from the
# checkpoint's, so both sittings name the same --train-iters.
total=$((TRAIN_ITERS + RESUME_ITERS))
if [ -n "${RESUME:-}" ]; then
    RUN_ARGS="--train-iters $total --save-interval $total --load $WORK/ckpt"
    log="$WORK/logs/resume.log"
else
    RUN_ARGS="--train-iters $total --save-interval $total --exit-interval $TRAIN_ITERS"
    log="$WORK/logs/train.log"
fi

cd "$mm"
started=$(date +%s)
set +e
# shellcheck disable=SC2086
"$python" pretrain_internvl.py $GPT_ARGS $MM_ARGS $OUTPUT_ARGS $RUN_ARGS \
    --ai-framework mindspore \
    --distributed-backend nccl \
    2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
echo "finetune_internvl2_tiny: exit $status after $(( $(date +%s) - started ))s; log: $log" | tee -a "$log"
exit "$status"
