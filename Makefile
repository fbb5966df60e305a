# Set-up and everyday tasks. `make test` is all a fresh machine needs to run the tests.
PYTHON ?= python3
VENV   ?= .venv
# A bare `torch` requirement would pull the CUDA build (several GB); install this one first.
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin

.PHONY: install test test-slow demo bench clean

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

# The main job on a machine without hub access: tiny random checkpoints written by transformers, then the CLI on
# real photos shipped with scikit-image. (With hub access: `ved caption photo.jpg` uses the published model.)
SKIMAGE = $(shell $(BIN)/python -c "import os, skimage.data; print(os.path.dirname(skimage.data.__file__))" 2>/dev/null)
demo: install
	$(BIN)/python tests/checkpoints.py out/demo-captioner --encoder vit --decoder gpt2 >/dev/null
	$(BIN)/python tests/checkpoints.py out/demo-ocr --encoder deit --decoder trocr >/dev/null
	$(BIN)/ved caption --model out/demo-captioner --format jsonl $(SKIMAGE)/chelsea.png $(SKIMAGE)/coffee.png $(SKIMAGE)/astronaut.png
	$(BIN)/ved ocr --model out/demo-ocr --beams 4 $(SKIMAGE)/page.png

bench: install
	$(BIN)/python benchmarks/generate.py --model vit-gpt2 --batch 4 --beams 1 4

clean:
	rm -rf $(VENV) .stamp-install .pytest_cache
