#!/usr/bin/env bash
# Put a trained checkpoint into the package as the built-in reader `printed` (vedcli/models/printed/): weights in
# fp16, generation up to 256 tokens, a model card; then check that transformers loads the folder as a plain
# VisionEncoderDecoder checkpoint with no missing or unexpected keys. Measure it afterwards with `make ocr-quality`.
#
#   recipes/printed/ship.sh ../reader/run-b/best
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BIN=${BIN:-$root/.venv/bin}
src=${1:?usage: ship.sh CHECKPOINT_FOLDER}
dest=$root/vedcli/models/printed
[ -f "$src/config.json" ] || { echo "ship.sh: no checkpoint in $src" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$BIN/ved" convert "$src" -o "$tmp/printed" --dtype fp16
"$BIN/python" - "$tmp/printed" "$src" <<'PY'
import json, pathlib, sys
folder, source = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]).resolve()
gen = json.loads((folder / "generation_config.json").read_text())
gen["max_length"] = 256  # the decoder's positions: long lines are not cut at the reference's default of 20
(folder / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
(folder / ".ved").unlink(missing_ok=True)  # ved's run marker: not part of the shipped model
metrics = source.parent / "metrics.jsonl"
evals = [json.loads(l) for l in metrics.read_text().splitlines() if '"eval"' in l] if metrics.exists() else []
best = min(evals, key=lambda e: e.get("cer", 1e9)) if evals else {}
(folder / "README.md").write_text(f"""# printed: ved's built-in reader of printed text lines

A plain VisionEncoderDecoder checkpoint (ViT encoder over 32 x 1280 line images in 32 x 8 patches, width 256, 6
layers; TrOCR decoder, width 256, 3 layers; ved's byte tokenizer), weights in fp16. Trained from scratch by ved on
synthetic lines only (`recipes/printed/` in ved's repository: fonts from Debian packages, text from what a Debian
machine ships, scan and photo degradations), with `ved compose` and `ved train`.

Checkpoint: {source.name} of run {source.parent.name}, training step {best.get('step', '?')}; character error rate on
300 synthetic validation lines {100 * best.get('cer', float('nan')):.1f} %. Figures on real scanned lines (UW3) are in
ved's README, measured by `make ocr-quality`.

Reads one line per image. For pages, `ved ocr` finds the lines first. Fine-tune on your own lines with
`ved train --model printed --data DIR ...`.
""")
PY
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
cp -r "$tmp/printed" "$dest"
if "$BIN/python" -c "import transformers" 2>/dev/null; then
  "$BIN/python" - "$dest" <<'PY'
import sys, transformers
model, info = transformers.VisionEncoderDecoderModel.from_pretrained(sys.argv[1], output_loading_info=True)
bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
if bad:
    sys.exit(f"ship.sh: transformers loads {sys.argv[1]} with {bad}")
print(f"transformers loads it: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, no missing or "
      "unexpected keys")
PY
fi
du -sh "$dest"
