#!/bin/bash
# Qwen2.5-VL fine-tuning at a tiny size on one CPU process, MindSpore, through the converted
# MindSpeed-MM: its own pretrain_vlm.py with the flags of upstream's
# examples/mindspore/qwen2.5vl/finetune_qwen2_5_vl_7b.sh (`--ai-framework mindspore`), the sizes cut
# down in model.json and the multi-card settings dropped (each difference is listed in README.md).
#
# Run it after `source auto_convert_mm.sh` (or `source <workspace>/set_env.sh`):
#   bash examples/qwen25vl_tiny/finetune_qwen25vl_tiny.sh            # 20 steps, saves a checkpoint
#   RESUME=1 bash examples/qwen25vl_tiny/finetune_qwen25vl_tiny.sh   # loads it, trains 5 more steps
# Environment: WORK (default ./qwen25vl_tiny_run: images, captions, tokenizer/processor, configs,
# checkpoints, logs), TRAIN_ITERS (default 20), RESUME_ITERS (default 5), PRECISION (default none:
# float32, as MindSpore's CPU kernels lack bf16 Sigmoid; upstream's is --bf16), LORA (set: LoRA as upstream's
# finetune_qwen2_5_vl_7b_lora.sh), MS_CONVERT_WORKSPACE (set
# by set_env.sh). Not meant to be sourced: it runs python and returns its exit status.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
workspace=${MS_CONVERT_WORKSPACE:?"run 'source auto_convert_mm.sh' (or source <workspace>/set_env.sh) first"}
mm="$workspace/MindSpeed-MM"
[ -f "$mm/pretrain_vlm.py" ] || { echo "$0: $mm/pretrain_vlm.py not found: is $workspace an mm workspace?" >&2; exit 2; }

WORK=${WORK:-$PWD/qwen25vl_tiny_run}
TRAIN_ITERS=${TRAIN_ITERS:-20}
RESUME_ITERS=${RESUME_ITERS:-5}
python=${PYTHON:-python}
if [ -n "${RESUME:-}" ] && [ ! -f "$WORK/ckpt/latest_checkpointed_iteration.txt" ]; then
    echo "$0: RESUME=1 but $WORK/ckpt has no checkpoint: run without RESUME first (same WORK)" >&2
    exit 2
fi
mkdir -p "$WORK/logs"
WORK=$(cd "$WORK" && pwd)

# 1. Images with captions, tokenizer + processor, data.json and model.json (upstream's, cut down).
if [ ! -f "$WORK/model.json" ]; then
    "$python" "$here/build_data.py" "$WORK" "$mm"
fi

# 2. Fine-tuning. One process: no msrun; mindtorch makes single-process groups.
export CUDA_DEVICE_MAX_CONNECTIONS=1
export GLOG_v=${GLOG_v:-3}   # MindSpore: errors only
export MASTER_ADDR=localhost MASTER_PORT=${MASTER_PORT:-6000}
# TP=2: tensor parallel over 2 processes, launched by mindtorch's MPI launcher (docs/distributed.md)
# in the place of upstream's msrun; it sets RANK, WORLD_SIZE, LOCAL_RANK, ... in each process.
TP=${TP:-1}
if ! [[ "$TP" =~ ^[12]$ ]]; then
    echo "$0: TP=$TP: give 1 or 2 (the tiny LLM has 2 KV groups)" >&2
    exit 2
fi
if [ "$TP" -eq 1 ]; then
    export RANK=0 LOCAL_RANK=0 WORLD_SIZE=1 LOCAL_WORLD_SIZE=1
    launch=("$python")
else
    unset RANK LOCAL_RANK WORLD_SIZE LOCAL_WORLD_SIZE
    launch=("$python" -m mindtorch.distributed.mpi_run --nproc-per-node "$TP" --master-port "$MASTER_PORT")
fi

PP=1
CP=1
MBS=1
GRAD_ACC_STEP=2
DP=1
GBS=$((MBS * GRAD_ACC_STEP * DP))

GPT_ARGS="
    --use-mcore-models
    --tensor-model-parallel-size ${TP}
    --pipeline-model-parallel-size ${PP}
    --context-parallel-size ${CP}
    --context-parallel-algo ulysses_cp_algo
    --micro-batch-size ${MBS}
    --global-batch-size ${GBS}
    --tokenizer-type NullTokenizer
    --vocab-size 151680
    --seq-length 256
    --make-vocab-size-divisible-by 1
    --normalization RMSNorm
    --use-fused-rmsnorm
    --swiglu
    --use-fused-swiglu
    --lr 1.0e-3
    --lr-decay-style cosine
    --weight-decay 0
    --lr-warmup-fraction 0.1
    --clip-grad 0.0
    --adam-beta1 0.9
    --adam-beta2 0.999
    --seed 42
    ${PRECISION-}
    --use-flash-attn
    --variable-seq-lengths
    --use-distributed-optimizer
    --num-workers 0
"

# LORA=1: upstream's finetune_qwen2_5_vl_7b_lora.sh, which differs from the full fine-tuning script only in these.
LORA_ARGS=""
if [ -n "${LORA:-}" ]; then
    LORA_ARGS="
    --lora-target-modules linear_qkv linear_proj linear_fc1 linear_fc2
    --lora-r 8
    --lora-alpha 16
    --lora-dropout 0
"
fi

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

# One schedule of TRAIN_ITERS + RESUME_ITERS steps (the learning rate's warmup and decay are fractions
# of it), trained in two sittings: the first stops after TRAIN_ITERS (--exit-interval saves a
# checkpoint there), the second loads it and finishes. Megatron refuses a resume whose schedule
# differs from the checkpoint's, so both sittings name the same --train-iters.
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
"${launch[@]}" pretrain_vlm.py $GPT_ARGS $LORA_ARGS $MM_ARGS $OUTPUT_ARGS $RUN_ARGS \
    --distributed-backend nccl \
    --ai-framework mindspore \
    2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
echo "finetune_qwen25vl_tiny: exit $status after $(( $(date +%s) - started ))s; log: $log" | tee -a "$log"
exit "$status"
