# Set-up and everyday tasks. `make test` is all a fresh machine needs to run the tests.
PYTHON ?= python3
VENV   ?= .venv
# A bare `torch` requirement would pull the CUDA build (several GB); install this one first.
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin

.PHONY: install test test-slow lint demo bench bench-gpu bench-onnx-deps ocr-quality page-quality reader-fonts reader clean

install: .stamp-install

.stamp-install: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check $(TORCH)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

test: install
	$(BIN)/python -m pytest

test-slow: install
	$(BIN)/python -m pytest -m slow

# ruff (pinned in pyproject.toml's test extra, configured there): the usual checks, import order, formatting.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The main job, end to end on a CPU in about a minute: the built-in reader, offline, on a photographed page
# (scikit-image's page.png: the lines are found and read in order) and on real scanned lines where ../shared holds
# them; then compose a small reader from two presets, draw eight text lines, fine-tune on them, read them back with
# the best checkpoint, convert it to fp16 and read again.
# (With hub access, `ved caption photo.jpg` / `ved ocr line.png --model microsoft/trocr-base-printed` work too.)
DEMO = out/demo
SHRINK = --encoder-config image_size=[32,256] --encoder-config patch_size=8 --encoder-config hidden_size=128 \
  --encoder-config num_hidden_layers=4 --encoder-config num_attention_heads=4 --encoder-config intermediate_size=256 \
  --decoder-config d_model=128 --decoder-config decoder_layers=2 --decoder-config decoder_attention_heads=4 \
  --decoder-config decoder_ffn_dim=256
UW3 = ../shared/data/uw3-dev
demo: install
	rm -rf $(DEMO)
	$(BIN)/ved ocr "$$($(BIN)/python -c 'import os, skimage; print(os.path.dirname(skimage.__file__))')/data/page.png"
	if [ -d $(UW3) ]; then $(BIN)/ved ocr --layout line --format tsv $$(ls $(UW3)/*.png | head -n 6); fi
	$(BIN)/ved compose vit trocr-small -o $(DEMO)/reader $(SHRINK)
	$(BIN)/python examples/draw_lines.py $(DEMO)/lines 8
	$(BIN)/ved train --model $(DEMO)/reader --data $(DEMO)/lines --val-data $(DEMO)/lines --output $(DEMO)/run \
	  --max-steps 200 --batch-size 8 --lr 2e-3 --warmup-steps 20 --eval-every 50 --metric cer
	$(BIN)/ved ocr --model $(DEMO)/run/best $(DEMO)/lines --format tsv
	$(BIN)/ved convert $(DEMO)/run/best -o $(DEMO)/reader-fp16 --dtype fp16
	$(BIN)/ved ocr --model $(DEMO)/reader-fp16 --beams 4 $(DEMO)/lines/1.png

# Speed and memory against transformers, side by side in one run (and ONNX Runtime once `make bench-onnx-deps` has
# installed it): six workloads, CPU fp32, batch 8; BENCH_ARGS adds options (--variants int8 bf16, --workloads ...).
bench: install
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

# The same six workloads on a CUDA GPU in fp16 and bf16: the reference, ved with CUDA graphs and without.
bench-gpu: install
	$(BIN)/python benchmarks/gpu_bench.py $(BENCH_ARGS)

# optimum-onnx pins transformers < 4.58 (the tests' reference is 5.24), so it goes into a folder of its own that only
# the benchmark's ONNX Runtime process reads (out/onnx-deps; torch and numpy come from the venv).
ONNX_PACKAGES = onnxruntime==1.32.0 optimum-onnx==0.1.0 optimum==2.1.0 transformers==4.57.6 huggingface_hub==0.36.2 \
  tokenizers==0.22.2 onnx==1.23.2 ml_dtypes==0.6.0 flatbuffers==25.12.19 requests certifi charset-normalizer urllib3
bench-onnx-deps: install
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --target out/onnx-deps $(ONNX_PACKAGES)

# CER, WER and seconds per line of the built-in reader (or OCR_MODEL=folder) on real scanned lines, beside tesseract
# on the same lines (benchmarks/ocr_quality.py; a few minutes on 2 CPUs). The figures also go to out/ocr-quality.json.
OCR_MODEL ?= printed
OCR_DATA  ?= ../shared/data/uw3-dev
ocr-quality: install
	mkdir -p out
	$(BIN)/python benchmarks/ocr_quality.py --model $(OCR_MODEL) --data $(OCR_DATA) --also int8 \
	  --json out/ocr-quality.json

# Page OCR (`ved ocr --layout page`: line finding, then the reader, or PAGE_MODEL=folder) beside tesseract on the same
# pages with the same threads: page CER/WER, line-finding recall, seconds per page, on synthetic pages, real scanned
# lines set as pages and scikit-image's photographed page (benchmarks/page_quality.py; out/page-quality.json).
PAGE_MODEL ?= printed
page-quality: install
	mkdir -p out
	$(BIN)/python benchmarks/page_quality.py --model $(PAGE_MODEL) --lines $(OCR_DATA) --json out/page-quality.json

# The built-in reader's recipe (recipes/printed/): the Debian font packages its synthetic lines are drawn with (and
# tesseract, the reference of `make ocr-quality`), then a training run that continues where the last one stopped.
# The run folder lives outside the repository (READER_RUN); see recipes/printed/README.md.
READER_FONTS = fonts-liberation fonts-dejavu-core fonts-dejavu-extra fonts-freefont-ttf fonts-urw-base35 \
  fonts-noto-core fonts-crosextra-carlito fonts-crosextra-caladea fonts-roboto fonts-texgyre
READER_RUN ?= ../reader
reader-fonts:
	apt-get install -y -q $(READER_FONTS) tesseract-ocr

reader: install
	RUN=$(READER_RUN) recipes/printed/train.sh

clean:
	rm -rf $(VENV) .stamp-install .pytest_cache
