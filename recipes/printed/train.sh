#!/usr/bin/env bash
# The built-in printed-text reader, from nothing: compose a small ViT + TrOCR-style model, draw synthetic lines,
# train it with `ved train`. Re-running continues where it stopped (`ved train --resume`).
#
#   RUN=../reader recipes/printed/train.sh            # run folder outside git; nice'd; logs to $RUN/train.log
#   STAGE=b LINES=200000 SEED=3 FROM=../reader/run-a/last recipes/printed/train.sh   # a later stage, more data
#
# On a CPU with native bf16 (AVX-512 BF16 / AMX) it trains in bf16, elsewhere in fp32 (bf16 emulated on AVX2 is
# tens of times slower). Fonts come from Debian packages: `make reader-fonts`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BIN=${BIN:-$root/.venv/bin}
VED=${VED:-$BIN/ved}
RUN=${RUN:-$root/../reader}
STAGE=${STAGE:-a}
LINES=${LINES:-60000}
SEED=${SEED:-1}
WORKERS=${WORKERS:-$(nproc)}
STEPS=${STEPS:-100000}
LR=${LR:-1e-3}
BATCH=${BATCH:-32}
WARMUP=${WARMUP:-1000}
CTC=${CTC:-0.3}  # weight of the auxiliary CTC loss on the encoder (a training-only head)
EMA=${EMA:-0.999}  # evaluate and keep the moving average of the weights (halved validation CER at lr 1e-3)
FROM=${FROM:-}
mkdir -p "$RUN"
if grep -q -E 'avx512_bf16|amx_bf16' /proc/cpuinfo 2>/dev/null || [ "${DEVICE:-cpu}" = cuda ]; then DTYPE=bf16; else DTYPE=fp32; fi

# 1. validation lines (a seed of their own) and training lines
[ -s "$RUN/val/metadata.jsonl" ] || nice "$BIN/python" "$here/make_lines.py" "$RUN/val" --count 300 --seed 2 --workers "$WORKERS"
data="$RUN/lines-$STAGE"
have=$( [ -f "$data/metadata.jsonl" ] && wc -l < "$data/metadata.jsonl" || echo 0)
if [ "$have" -lt "$LINES" ]; then
  rm -rf "$data"
  nice "$BIN/python" "$here/make_lines.py" "$data" --count "$LINES" --seed "$SEED" --workers "$WORKERS"
fi

# 2. the model: a fresh composition, or the previous stage's weights
model="$RUN/init"
if [ -n "$FROM" ]; then
  model="$FROM"
elif [ ! -f "$model/config.json" ]; then
  "$VED" compose vit trocr-small -o "$model" \
    --encoder-config image_size=[32,1280] --encoder-config patch_size=[32,8] --encoder-config hidden_size=256 \
    --encoder-config num_hidden_layers=6 --encoder-config num_attention_heads=4 --encoder-config intermediate_size=1024 \
    --decoder-config d_model=256 --decoder-config decoder_layers=3 --decoder-config decoder_attention_heads=4 \
    --decoder-config decoder_ffn_dim=1024 --decoder-config max_position_embeddings=256
  # lines keep their aspect ratio: height 32, padded to 1280 wide (transformers' DonutImageProcessor does the same)
  cp "$here/preprocessor_config.json" "$model/preprocessor_config.json"
  # lines run up to ~170 characters: without a length the reference's default (20 tokens in all) would cut them
  "$BIN/python" - "$model/generation_config.json" <<'PY'
import json, sys
path = sys.argv[1]
config = json.load(open(path))
config["max_length"] = 256  # the decoder's max_position_embeddings
json.dump(config, open(path, "w"), indent=2)
PY
fi

# 3. train (or continue)
run="$RUN/run-$STAGE"
common=(--device "${DEVICE:-cpu}" --dtype "$DTYPE" --workers "${TRAIN_WORKERS:-1}")
if [ -d "$run/last" ]; then
  nice "$VED" train --output "$run" --resume "${common[@]}" 2>&1 | tee -a "$RUN/train-$STAGE.log"
else
  nice "$VED" train --model "$model" --data "$data" --val-data "$RUN/val" --output "$run" "${common[@]}" \
    --max-steps "$STEPS" --batch-size "$BATCH" --lr "$LR" --warmup-steps "$WARMUP" --schedule cosine \
    --weight-decay 0.01 --ctc-weight "$CTC" --ema-decay "$EMA" --eval-every 1000 --save-every 250 --log-every 50 \
    --metric cer --samples 3 \
    2>&1 | tee -a "$RUN/train-$STAGE.log"
fi
