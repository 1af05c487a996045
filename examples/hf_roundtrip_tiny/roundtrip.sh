#!/bin/bash
# HF -> Megatron -> HF round trip of a tiny Qwen3 on MindSpore CPU, through the converted
# MindSpeed-LLM's own tools, checked against unconverted transformers on PyTorch CPU:
#   1. a tiny HF Qwen3 (random weights, safetensors, an offline tokenizer)          make_hf_model.py
#   2. HF -> Megatron (TP x PP shards, default 1 x 1) with upstream's
#      examples/mindspore/qwen3/ckpt_convert_qwen3_hf2mcore.sh flags
#   3. Megatron -> HF at once (the "before" round trip; the shards merged to TP = PP = 1) with
#      ckpt_convert_qwen3_mcore2hf.sh's flags
#   4. 10 training steps from the converted checkpoint (pretrain_gpt.py --load --finetune) with
#      upstream's pretrain_qwen3_0point6b_4K_ms.sh flags cut to the tiny size, on TP x PP processes
#   5. Megatron -> HF of the trained checkpoint (the "after" round trip)
#   6. logits and 16 greedy tokens of each Megatron checkpoint on MindSpore (megatron_side.py:
#      MindSpeed-LLM's inference model and generate API), and of each HF checkpoint on PyTorch
#      (hf_side.py), compared by compare.py; and MindSpeed-LLM's inference.py --task greedy do_sample
#      itself on the trained checkpoint (its greedy text against transformers' decode; its sampled text
#      against a second process's with the same seed)
#
# Run it after `source auto_convert_llm.sh` (or `source <workspace>/set_env.sh`):
#   bash examples/hf_roundtrip_tiny/roundtrip.sh
# Environment: WORK (default ./hf_roundtrip_run), REFERENCE_PYTHON (a Python with torch, transformers
# and safetensors, never mindtorch; default: the checkout's .venv-torch), TRAIN_ITERS (default 10),
# INFERENCE=0 to leave out step 6's inference.py run, TP and PP (default 1: the Megatron layout; TP x PP
# > 1 runs every MindSpore model on TP x PP processes with mindtorch's MPI launcher, docs/distributed.md).
# Exit status: compare.py's (0: every check holds).
# Not meant to be sourced.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
checkout=$(cd "$here/../.." && pwd)
workspace=${MS_CONVERT_WORKSPACE:?"run 'source auto_convert_llm.sh' (or source <workspace>/set_env.sh) first"}
llm="$workspace/MindSpeed-LLM"
[ -f "$llm/pretrain_gpt.py" ] || { echo "$0: $llm/pretrain_gpt.py not found: is $workspace an llm workspace?" >&2; exit 2; }
reference=${REFERENCE_PYTHON:-$checkout/.venv-torch/bin/python}
ref() { env -u PYTHONPATH "$reference" "$@"; }   # never the workspace's converted packages
if ! ref -c "import torch, transformers, safetensors" 2>/dev/null; then
    echo "$0: $reference cannot import torch, transformers and safetensors: set REFERENCE_PYTHON to a PyTorch Python that has them (pip install transformers==4.55.4 safetensors)" >&2
    exit 2
fi

WORK=${WORK:-$PWD/hf_roundtrip_run}
TRAIN_ITERS=${TRAIN_ITERS:-10}
TP=${TP:-1}
PP=${PP:-1}
for n in "$TP" "$PP"; do
    [[ "$n" =~ ^[12]$ ]] || { echo "$0: TP=$TP PP=$PP: each must be 1 or 2 (the tiny model has 2 layers and 2 KV heads)" >&2; exit 2; }
done
NPROC=$((TP * PP))
python=${PYTHON:-python}
mkdir -p "$WORK/logs" "$WORK/out"
WORK=$(cd "$WORK" && pwd)
TEXT="The river carried the old boat past the mill, and the children ran along the bank."
PROMPT="how are you?"

export CUDA_DEVICE_MAX_CONNECTIONS=1
export GLOG_v=${GLOG_v:-3}
export MASTER_ADDR=localhost MASTER_PORT=${MASTER_PORT:-6000}
if [ "$NPROC" -eq 1 ]; then   # one process: no launcher; mindtorch makes single-process groups
    export RANK=0 LOCAL_RANK=0 WORLD_SIZE=1
    launch=("$python")
else                          # mindtorch's MPI launcher sets RANK, WORLD_SIZE, ... in each process
    unset RANK LOCAL_RANK WORLD_SIZE
    launch=("$python" -m mindtorch.distributed.mpi_run --nproc-per-node "$NPROC" --master-port "$MASTER_PORT")
fi

step() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# 1. Tokenizer, corpus and data (MindSpeed-LLM's preprocess_data.py with upstream's
#    data_convert_qwen3_pretrain.sh flags: no --append-eod), the HF model, and this example's
#    MindSpore-side script converted like any user script.
if [ ! -f "$WORK/data/tiny_text_document.idx" ]; then
    step "tokenizer, data"
    "$python" "$checkout/examples/deepseek3_tiny/build_tokenizer.py" "$WORK" >/dev/null
    mkdir -p "$WORK/data.tmp"
    (cd "$llm" && "$python" preprocess_data.py \
        --input "$WORK/corpus.jsonl" --json-keys text \
        --tokenizer-type PretrainedFromHF --tokenizer-name-or-path "$WORK/tokenizer" \
        --handler-name GeneralPretrainHandler --output-prefix "$WORK/data.tmp/tiny" --workers 1 --log-interval 1000) > "$WORK/logs/preprocess.log" 2>&1
    rm -rf "$WORK/data" && mv "$WORK/data.tmp" "$WORK/data"
fi
step "HF model"
rm -rf "$WORK/hf"
"$python" "$here/make_hf_model.py" "$WORK/hf" "$WORK/tokenizer" >/dev/null
rm -rf "$WORK/converted"
(cd "$checkout" && "$python" -m tools.convert convert "$here" -o "$WORK/converted" -q)

# Upstream's qwen3 model flags (pretrain_qwen3_0point6b_4K_ms.sh / generate_qwen3_0point6b_ptd.sh),
# sizes from qwen3_tiny_config.json; fp32 instead of --bf16 (MindSpore's CPU kernels reject bf16).
MODEL_ARGS="
    --use-mcore-models
    --tensor-model-parallel-size $TP
    --pipeline-model-parallel-size $PP
    --spec mindspeed_llm.tasks.models.spec.qwen3_spec layer_spec
    --kv-channels 16
    --qk-layernorm
    --num-layers 2
    --hidden-size 64
    --num-attention-heads 4
    --ffn-hidden-size 160
    --max-position-embeddings 512
    --seq-length 128
    --make-vocab-size-divisible-by 1
    --padded-vocab-size 512
    --rotary-base 1000000
    --disable-bias-linear
    --swiglu
    --tokenizer-type PretrainedFromHF
    --tokenizer-name-or-path $WORK/tokenizer
    --normalization RMSNorm
    --position-embedding-type rope
    --use-rotary-position-embeddings
    --norm-epsilon 1e-6
    --hidden-dropout 0
    --attention-dropout 0
    --no-gradient-accumulation-fusion
    --attention-softmax-in-fp32
    --exit-on-missing-checkpoint
    --no-masked-softmax-fusion
    --group-query-attention
    --num-query-groups 2
    --micro-batch-size 1
"

# Sampling: MindSpeed-LLM's own flags (arguments.py: --top-k 50 --top-p 0.95 --temperature 0.7 by default),
# at the values of upstream's examples/mcore/hunyuanLarge/generate_hunyuanLarge_389b_A3_ptd.sh
SAMPLING_ARGS="--top-k 20 --top-p 0.6 --temperature 0.7"

# ckpt_convert_qwen3_{hf2mcore,mcore2hf}.sh's flags, fp32 for bf16; the target layout: TP x PP for
# hf2mcore, 1 x 1 for mcore2hf (as upstream's)
convert() {  # convert LOAD_TYPE SAVE_TYPE LOAD_DIR SAVE_DIR LOG TARGET_TP TARGET_PP [extra flags...]
    local load_type=$1 save_type=$2 load=$3 save=$4 log=$5 tp=$6 pp=$7; shift 7
    (cd "$llm" && "$python" ./mindspeed_llm/mindspore/convert_ckpt.py \
        --use-mcore-models --model-type GPT --load-model-type "$load_type" --save-model-type "$save_type" \
        --target-tensor-parallel-size "$tp" --target-pipeline-parallel-size "$pp" \
        --spec mindspeed_llm.tasks.models.spec.qwen3_spec layer_spec \
        --load-dir "$load" --save-dir "$save" --params-dtype fp32 --model-type-hf qwen3 \
        --ai-framework mindspore "$@") > "$WORK/logs/$log" 2>&1 || { echo "$0: conversion failed: $WORK/logs/$log" >&2; tail -20 "$WORK/logs/$log" >&2; exit 1; }
}
to_hf() {  # to_hf MEGATRON_DIR HF_DIR LOG: mcore2hf writes HF_DIR/mg2hf/ from a copy of the original
    rm -rf "$2" && cp -r "$WORK/hf" "$2"
    convert mg hf "$1" "$2" "$3" 1 1
    cp "$WORK/hf/tokenizer.json" "$WORK/hf/tokenizer_config.json" "$2/mg2hf/"
}
megatron_side() {  # megatron_side MEGATRON_DIR OUT LOG
    (cd "$llm" && "${launch[@]}" "$WORK/converted/megatron_side.py" --out "$2" --text "$TEXT" --prompt "$PROMPT" \
        $MODEL_ARGS --load "$1" --max-new-tokens 16 --seed 42 --sample $SAMPLING_ARGS) > "$WORK/logs/$3" 2>&1 || { echo "$0: megatron_side.py failed: $WORK/logs/$3" >&2; tail -20 "$WORK/logs/$3" >&2; exit 1; }
}

# 2.-3. HF -> Megatron -> HF
step "hf2mcore"
rm -rf "$WORK/mg"
convert hf mg "$WORK/hf" "$WORK/mg" hf2mcore.log "$TP" "$PP" --tokenizer-model "$WORK/hf/tokenizer.json"
step "mcore2hf (before training)"
to_hf "$WORK/mg" "$WORK/hf_before" mcore2hf_before.log
step "Megatron logits + generation (before training)"
megatron_side "$WORK/mg" "$WORK/out/mg_before" megatron_before.log

# 4. Training from the converted checkpoint: upstream's 0.6B pretraining flags, tiny (with TP 2 its
#    --sequence-parallel too; upstream's --use-distributed-optimizer is left out: data parallel is 1)
TRAIN_PARALLEL_ARGS=""
if [ "$TP" -gt 1 ]; then TRAIN_PARALLEL_ARGS="--sequence-parallel"; fi
step "train $TRAIN_ITERS steps"
rm -rf "$WORK/mg_trained"
(cd "$llm" && "${launch[@]}" pretrain_gpt.py $MODEL_ARGS $TRAIN_PARALLEL_ARGS \
    --load "$WORK/mg" --finetune --no-load-optim --no-load-rng --save "$WORK/mg_trained" \
    --data-path "$WORK/data/tiny_text_document" --split 100,0,0 \
    --global-batch-size 4 --train-iters "$TRAIN_ITERS" --lr 3.0e-3 --min-lr 3.0e-4 --lr-warmup-iters 2 \
    --lr-decay-style cosine --weight-decay 1e-1 --clip-grad 1.0 --adam-beta1 0.9 --adam-beta2 0.95 \
    --initial-loss-scale 4096 --no-shared-storage --use-flash-attn --use-fused-rotary-pos-emb \
    --use-fused-swiglu --use-fused-rmsnorm --seed 1234 --num-workers 0 \
    --log-interval 1 --save-interval "$TRAIN_ITERS" --eval-interval 100000 --eval-iters 0 \
    --distributed-backend nccl --ai-framework mindspore) > "$WORK/logs/train.log" 2>&1 || { echo "$0: training failed: $WORK/logs/train.log" >&2; tail -20 "$WORK/logs/train.log" >&2; exit 1; }

# 5. Megatron -> HF of the trained checkpoint
step "mcore2hf (after training)"
to_hf "$WORK/mg_trained" "$WORK/hf_after" mcore2hf_after.log
step "Megatron logits + generation (after training)"
megatron_side "$WORK/mg_trained" "$WORK/out/mg_after" megatron_after.log

# 6. MindSpeed-LLM's inference entry point itself on the trained checkpoint: greedy (16 tokens) and
#    sampling with the flags above, then sampling alone in a second process (the same --seed: the same
#    reply, since nothing before the sampling draws random numbers differently)
inference_log=()
if [ "${INFERENCE:-1}" != 0 ]; then
    step "inference.py --task greedy do_sample"
    for run in inference:"greedy do_sample" inference_sample_again:do_sample; do
        (cd "$llm" && "${launch[@]}" inference.py $MODEL_ARGS --load "$WORK/mg_trained" --task ${run#*:} \
            $SAMPLING_ARGS --max-new-tokens 16 --seed 42) > "$WORK/logs/${run%%:*}.log" 2>&1 || { echo "$0: inference.py failed: $WORK/logs/${run%%:*}.log" >&2; tail -20 "$WORK/logs/${run%%:*}.log" >&2; exit 1; }
    done
    inference_log=(--inference-log "$WORK/logs/inference.log" --inference-sample-log "$WORK/logs/inference_sample_again.log")
fi

# The reference: unconverted transformers on PyTorch CPU, and the comparison
step "transformers on PyTorch"
for which in before after; do
    ref "$here/hf_side.py" "$WORK/hf_$which/mg2hf" --out "$WORK/out/hf_$which" --text "$TEXT" \
        --prompt "$PROMPT" --max-new-tokens 16 --sampling-of "$WORK/out/mg_$which" > "$WORK/logs/hf_$which.log" 2>&1 || { echo "$0: hf_side.py failed: $WORK/logs/hf_$which.log" >&2; tail -20 "$WORK/logs/hf_$which.log" >&2; exit 1; }
done
step "compare"
ref "$here/compare.py" "$WORK" --train-log "$WORK/logs/train.log" "${inference_log[@]}"
