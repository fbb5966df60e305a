#!/usr/bin/env bash
# Pack what gpu_train.sh needs on the device machine, where nothing can be installed or fetched and the working tree
# travels with at most 64 MiB: the font files make_lines.py draws with (Debian packages here), the corpus, the
# validation lines, and the checkpoint to go on from, in bf16 and without optimizer state.
#
#   FROM=../reader/run-b/last recipes/printed/gpu_pack.sh     # -> out/reader-gpu (ignored by git; `carry` it)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BIN=${BIN:-$root/.venv/bin}
RUN=${RUN:-$root/../reader}
FROM=${FROM:-$RUN/run-b/last}
DEST=${DEST:-$root/out/reader-gpu}
LIMIT_MIB=${LIMIT_MIB:-58}  # leaves room for the repository itself
rm -rf "$DEST"
mkdir -p "$DEST"
"$BIN/python" -c "import sys; sys.path.insert(0, sys.argv[1]); from render import find_fonts
print('\n'.join(f for f, _ in find_fonts()))" "$here" > "$DEST/fonts.txt"
[ -s "$DEST/fonts.txt" ] || { echo "no fonts found: make reader-fonts" >&2; exit 1; }
tar -cJf "$DEST/fonts.tar.xz" -P -T "$DEST/fonts.txt"  # absolute paths: gpu_train.sh unpacks them under a folder
corpus=$(ls "$RUN"/lines-*/corpus.json 2>/dev/null | head -1)
[ -n "$corpus" ] || { echo "no corpus.json under $RUN/lines-*: run make_lines.py once here" >&2; exit 1; }
cp "$corpus" "$DEST/corpus.json"
mkdir -p "$DEST/val"
cp -r "$RUN/val/metadata.jsonl" "$RUN"/val/0* "$DEST/val/"
"$BIN/ved" convert "$FROM" -o "$DEST/model" --dtype bf16
"$BIN/python" - "$DEST/model/generation_config.json" <<'PY'
import json, sys
path = sys.argv[1]
config = json.load(open(path))
config["max_length"] = 256  # lines run up to ~170 characters (see train.sh)
json.dump(config, open(path, "w"), indent=2)
PY
size=$(du -sm "$DEST" | cut -f1)
echo "$DEST: $size MiB ($(wc -l < "$DEST/fonts.txt") fonts, $(wc -l < "$DEST/val/metadata.jsonl") validation lines)"
[ "$size" -le "$LIMIT_MIB" ] || { echo "too big to travel (over $LIMIT_MIB MiB)" >&2; exit 1; }
