#!/usr/bin/env bash
# The reader's training on the device machine (one GPU, 16 cores; run from the repository's root there), in one
# command that fits its 10-minute limit: unpack the fonts, draw fresh lines on every core for GEN_S seconds, train
# with `ved train` on the GPU for TRAIN_S seconds from the packed checkpoint (gpu_pack.sh), and put the result in
# $OUT: the last checkpoint (and best/, the averaged weights) in bf16 as a tar in 15 MiB parts (files come back at
# most 16 MiB each, 8 in all), the metrics and the logs. Here, afterwards: cat model.tar.part-* | tar -x -C DIR.
#
#   device run: bash recipes/printed/gpu_train.sh     carry: out/reader-gpu     timeout_s: 590
set -uo pipefail
B=${B:-out/reader-gpu}
OUTD=${OUT:-/tmp/reader-out}
W=${W:-/tmp/reader-gpu}
GEN_S=${GEN_S:-200}
TRAIN_S=${TRAIN_S:-280}
LINES=${LINES:-200000}
SEED=${SEED:-7}  # a seed no earlier stage used (run-a: 1, run-b: 3, validation: 2)
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
BATCH=${BATCH:-256}
LR=${LR:-1e-3}
WORKERS=${WORKERS:-$(nproc)}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 READER_FONT_ROOTS="$W/fonts/usr/share/fonts:$W/fonts/usr/share"
mkdir -p "$OUTD" "$W/lines" "$W/fonts"
tar -xJf "$B/fonts.tar.xz" -C "$W/fonts" || exit 1
cp "$B/corpus.json" "$W/lines/corpus.json"
start=$(date +%s)
timeout -k 15 -s INT "$GEN_S" "$PY" recipes/printed/make_lines.py "$W/lines" --count "$LINES" --seed "$SEED" \
  --workers "$WORKERS" 2> "$W/gen.log"
pkill -f make_lines.py 2>/dev/null
lines=$(wc -l < "$W/lines/metadata.jsonl")
echo "drew $lines lines in $(( $(date +%s) - start )) s" | tee "$OUTD/summary.txt"
[ "$lines" -gt 0 ] || { tail -5 "$W/gen.log"; exit 1; }
start=$(date +%s)
timeout -k 60 -s INT "$TRAIN_S" "$PY" -m vedcli train --model "$B/model" --data "$W/lines" --val-data "$B/val" \
  --output "$W/run" --device "$DEVICE" --dtype bf16 --batch-size "$BATCH" --lr "$LR" --warmup-steps 100 \
  --max-steps 100000 --eval-every 500 --save-every 250 --log-every 50 --workers "$WORKERS" --ctc-weight 0.3 \
  --ema-decay 0.999 \
  --metric cer > "$OUTD/train.log" 2>&1
echo "trained $(( $(date +%s) - start )) s: $(cat "$W/run/metrics.jsonl" 2>/dev/null | grep -c '"train"') training log lines" | tee -a "$OUTD/summary.txt"
cp "$W/run/metrics.jsonl" "$OUTD/metrics.jsonl" 2>/dev/null
[ -f "$W/run/last/model.safetensors" ] || { tail -20 "$OUTD/train.log"; exit 1; }
"$PY" -m vedcli convert "$W/run/last" -o "$W/pack/model" --dtype bf16 >> "$OUTD/summary.txt" 2>&1 || exit 1
packed=(model)
if [ -f "$W/run/best/model.safetensors" ]; then  # the averaged weights (--ema-decay): what to ship or measure
  "$PY" -m vedcli convert "$W/run/best" -o "$W/pack/best" --dtype bf16 >> "$OUTD/summary.txt" 2>&1 && packed+=(best)
fi
tar -cf - -C "$W/pack" "${packed[@]}" | split -b 15M - "$OUTD/model.tar.part-"
ls -la "$OUTD" >> "$OUTD/summary.txt"
cat "$OUTD/summary.txt"
