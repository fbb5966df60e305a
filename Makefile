# Set-up and everyday tasks. `make test` is all a fresh machine needs to run the tests.
PYTHON ?= python3
VENV   ?= .venv
# A bare `torch` requirement would pull the CUDA build (several GB); install this one first.
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin

.PHONY: install test test-slow demo clean

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

clean:
	rm -rf $(VENV) .stamp-install .pytest_cache
