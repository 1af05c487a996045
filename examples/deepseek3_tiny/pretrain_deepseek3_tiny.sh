#!/bin/bash
# DeepSeek-V3 pretraining at a tiny size, on 1 (default) or NPROC CPU processes, MindSpore CPU,
# through the converted MindSpeed-LLM: the features of upstream's examples/mindspore/deepseek3/pretrain_deepseek3_1b_4k_8p_ms.sh
# (MLA, MoE with routed + shared experts and the same router, MTP, YaRN RoPE, fused ops, noop layer)
# with the sizes cut down and the multi-card settings dropped (each difference is listed in README.md).
#
# Run it after `source auto_convert_llm.sh` (or `source <workspace>/set_env.sh`):
#   bash examples/deepseek3_tiny/pretrain_deepseek3_tiny.sh            # 20 steps, saves a checkpoint
#   RESUME=1 bash examples/deepseek3_tiny/pretrain_deepseek3_tiny.sh   # loads it, trains 5 more steps
# Environment: WORK (default ./deepseek3_tiny_run: data, tokenizer, checkpoints, logs), TRAIN_ITERS
# (default 20), RESUME_ITERS (default 5), SAVE_INTERVAL (default TRAIN_ITERS + RESUME_ITERS: a
# checkpoint also every SAVE_INTERVAL steps; RESUME loads the iteration named in
# ckpt/latest_checkpointed_iteration.txt), MS_CONVERT_WORKSPACE (set by set_env.sh), and upstream's
# settings this run leaves out by default, each switched on by itself (use the same ones on RESUME):
#   RECOMPUTE=1  --recompute-granularity full --recompute-method uniform --recompute-num-layers 1
#   DIST_OPT=1   --use-distributed-optimizer
#   AUX_LOSS=1   --moe-router-load-balancing-type aux_loss (upstream's DeepSeek-V3 uses none, with
#                the expert bias; aux_loss is the setting of its qwen3_moe and mixtral scripts)
# NPROC=N (even, default 1): upstream's multi-card layout scaled from its 8 processes to N: pipeline
# parallel 2, expert parallel N/2 (upstream: PP 2, EP 4 of 8), data parallel N/2, the distributed
# optimizer and full uniform recomputation of 1 layer (RECOMPUTE and DIST_OPT are implied), launched
# by mindtorch's MPI launcher in the place of upstream's msrun:
#   upstream: msrun --worker_num 8 --local_worker_num 8 --master_port 6000 ... pretrain_gpt.py ARGS
#   here:     python -m mindtorch.distributed.mpi_run --nproc-per-node N --master-port 6000 pretrain_gpt.py ARGS
# Not meant to be sourced: it runs python and returns its exit status.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
workspace=${MS_CONVERT_WORKSPACE:?"run 'source auto_convert_llm.sh' (or source <workspace>/set_env.sh) first"}
llm="$workspace/MindSpeed-LLM"
[ -f "$llm/pretrain_gpt.py" ] || { echo "$0: $llm/pretrain_gpt.py not found: is $workspace an llm workspace?" >&2; exit 2; }

WORK=${WORK:-$PWD/deepseek3_tiny_run}
TRAIN_ITERS=${TRAIN_ITERS:-20}
RESUME_ITERS=${RESUME_ITERS:-5}
python=${PYTHON:-python}
NPROC=${NPROC:-1}
if ! [[ "$NPROC" =~ ^[1-9][0-9]*$ ]] || { [ "$NPROC" -ne 1 ] && [ $((NPROC % 2)) -ne 0 ]; }; then
    echo "$0: NPROC=$NPROC: give 1 or an even number of processes (pipeline parallel 2 x expert parallel NPROC/2)" >&2
    exit 2
fi
if [ -n "${RESUME:-}" ] && [ ! -f "$WORK/ckpt/latest_checkpointed_iteration.txt" ]; then
    echo "$0: RESUME=1 but $WORK/ckpt has no checkpoint: run without RESUME first (same WORK)" >&2
    exit 2
fi
mkdir -p "$WORK/logs"
WORK=$(cd "$WORK" && pwd)

# 1. Tokenizer (built offline from the shipped corpus) and the dataset, with MindSpeed-LLM's own
#    preprocess_data.py. Both are reused when present.
if [ ! -f "$WORK/data/tiny_text_document.idx" ]; then
    "$python" "$here/build_tokenizer.py" "$WORK"
    mkdir -p "$WORK/data.tmp"
    (cd "$llm" && "$python" preprocess_data.py \
        --input "$WORK/corpus.jsonl" --json-keys text \
        --tokenizer-type PretrainedFromHF --tokenizer-name-or-path "$WORK/tokenizer" \
        --output-prefix "$WORK/data.tmp/tiny" --workers 1 --append-eod --log-interval 1000)
    rm -rf "$WORK/data" && mv "$WORK/data.tmp" "$WORK/data"
fi

# 2. Training. One process: no launcher; mindtorch makes single-process groups. NPROC > 1: mindtorch's
#    MPI launcher (docs/distributed.md) sets RANK, WORLD_SIZE, LOCAL_RANK, ... in each process.
export CUDA_DEVICE_MAX_CONNECTIONS=1
export GLOG_v=${GLOG_v:-3}   # MindSpore: errors only (its CPU kernels warn on every empty MoE expert batch)
export MASTER_ADDR=localhost MASTER_PORT=${MASTER_PORT:-6000}
if [ "$NPROC" -eq 1 ]; then
    export RANK=0 LOCAL_RANK=0 WORLD_SIZE=1
    PP=1 EP=1
    launch=("$python")
else
    unset RANK LOCAL_RANK WORLD_SIZE
    PP=2 EP=$((NPROC / 2))
    RECOMPUTE=1 DIST_OPT=1
    launch=("$python" -m mindtorch.distributed.mpi_run --nproc-per-node "$NPROC" --master-port "$MASTER_PORT")
fi

NUM_LAYERS=4
SEQ_LEN=128
MBS=1
GBS=4

MLA_ARGS="
    --multi-latent-attention
    --qk-pos-emb-head-dim 16
    --qk-head-dim 32
    --q-lora-rank 64
    --kv-lora-rank 32
    --v-head-dim 32
    --qk-layernorm
    --mla-fa-without-pad
"

MOE_ARGS="
    --moe-router-dtype fp32
    --moe-permutation-async-comm
    --moe-token-dispatcher-type alltoall_seq
    --first-k-dense-replace 1
    --moe-layer-freq 1
    --n-shared-experts 1
    --num-experts 8
    --moe-router-topk 2
    --moe-ffn-hidden-size 64
    --moe-router-load-balancing-type none
    --moe-router-num-groups 4
    --moe-router-group-topk 2
    --moe-router-topk-scaling-factor 2.5
    --moe-aux-loss-coeff 0.0001
    --seq-aux
    --norm-topk-prob
    --moe-router-score-function sigmoid
    --moe-router-enable-expert-bias
"

MTP_ARGS="
    --mtp-num-layers 1
    --mtp-loss-scaling-factor 0.3
    --mtp-mem-efficient-logits
"

ROPE_ARGS="
    --beta-fast 32
    --beta-slow 1
    --rope-scaling-factor 40
    --rope-scaling-mscale 1.0
    --rope-scaling-mscale-all-dim 1.0
    --rope-scaling-original-max-position-embeddings 128
    --rope-scaling-type yarn
"

GPT_ARGS="
    --spec mindspeed_llm.tasks.models.spec.deepseek_spec layer_spec
    --no-gradient-accumulation-fusion
    --reset-position-ids
    --noop-layers 3
    --no-shared-storage
    --use-flash-attn
    --use-mcore-models
    --tensor-model-parallel-size 1
    --pipeline-model-parallel-size ${PP}
    --expert-model-parallel-size ${EP}
    --context-parallel-size 1
    --num-layers ${NUM_LAYERS}
    --hidden-size 128
    --ffn-hidden-size 256
    --num-attention-heads 4
    --tokenizer-type PretrainedFromHF
    --tokenizer-name-or-path $WORK/tokenizer
    --seq-length ${SEQ_LEN}
    --max-position-embeddings 5120
    --micro-batch-size ${MBS}
    --global-batch-size ${GBS}
    --make-vocab-size-divisible-by 1
    --lr 3.0e-3
    --lr-decay-style cosine
    --untie-embeddings-and-output-weights
    --disable-bias-linear
    --attention-dropout 0.0
    --init-method-std 0.02
    --hidden-dropout 0.0
    --position-embedding-type rope
    --normalization RMSNorm
    --use-fused-rotary-pos-emb
    --use-rotary-position-embeddings
    --use-fused-swiglu
    --use-fused-rmsnorm
    --swiglu
    --no-masked-softmax-fusion
    --attention-softmax-in-fp32
    --min-lr 3.0e-4
    --weight-decay 1e-2
    --lr-warmup-iters 2
    --clip-grad 1.0
    --adam-beta1 0.9
    --adam-beta2 0.999
    --rotary-base 10000
    --norm-epsilon 1e-6
    --seed 1234
    --num-workers 0
    --distributed-timeout-minutes 10
"

DATA_ARGS="
    --data-path $WORK/data/tiny_text_document
    --split 100,0,0
"

OUTPUT_ARGS="
    --log-interval 1
    --eval-interval 100000
    --eval-iters 0
    --save $WORK/ckpt
"

VARIANT_ARGS=""
if [ -n "${RECOMPUTE:-}" ]; then
    VARIANT_ARGS+=" --recompute-granularity full --recompute-method uniform --recompute-num-layers 1"
fi
if [ -n "${DIST_OPT:-}" ]; then
    VARIANT_ARGS+=" --use-distributed-optimizer"
fi
if [ "$NPROC" -gt 1 ]; then
    # The processes share one file system: rank 0 builds the dataset's index files and the others
    # read them after Megatron's barrier. Upstream's --no-shared-storage (each node its own disk)
    # makes every rank that counts as first on its node build them; here each process counts as
    # one (mindtorch's CPU target has one device, and MindSpore's get_local_rank() is 0 outside
    # msrun), so all 4 wrote the same files at once and a rank read a half-written one
    # ("EOFError: No data left in file" in numpy.load).
    GPT_ARGS=${GPT_ARGS/--no-shared-storage/}
fi
if [ -n "${AUX_LOSS:-}" ]; then
    MOE_ARGS=${MOE_ARGS/--moe-router-load-balancing-type none/--moe-router-load-balancing-type aux_loss}
fi

# One schedule of TRAIN_ITERS + RESUME_ITERS steps, trained in two sittings: the first stops after
# TRAIN_ITERS (--exit-interval saves a checkpoint there), the second loads it and finishes.
total=$((TRAIN_ITERS + RESUME_ITERS))
SAVE_INTERVAL=${SAVE_INTERVAL:-$total}
if [ -n "${RESUME:-}" ]; then
    log="$WORK/logs/resume.log"
    RUN_ARGS="--train-iters $total --save-interval $SAVE_INTERVAL --load $WORK/ckpt"
else
    log="$WORK/logs/train.log"
    RUN_ARGS="--train-iters $total --save-interval $SAVE_INTERVAL --exit-interval $TRAIN_ITERS"
fi

cd "$llm"
# shellcheck disable=SC2086  # the argument blocks are word lists
"${launch[@]}" pretrain_gpt.py \
    $GPT_ARGS $DATA_ARGS $OUTPUT_ARGS $MLA_ARGS $ROPE_ARGS $MOE_ARGS $MTP_ARGS $VARIANT_ARGS $RUN_ARGS \
    --distributed-backend nccl \
    --ai-framework mindspore \
    2>&1 | tee "$log"
exit "${PIPESTATUS[0]}"
