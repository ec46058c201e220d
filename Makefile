# Two targets a newcomer needs: `make book` and `make test`. Both create .venv on first use.
PYTHON ?= python3.11
VENV   ?= .venv
PY      = $(VENV)/bin/python
SCALE  ?= default
DEVICE ?= cpu

.PHONY: book test bench check-gpu clean

$(VENV)/.installed: requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	$(VENV)/bin/pip install -q --no-deps --no-build-isolation -e .
	touch $@

book: $(VENV)/.installed
	$(PY) -m erase book --scale $(SCALE) --device $(DEVICE)

test: $(VENV)/.installed
	$(PY) -m pytest

bench: $(VENV)/.installed
	$(PY) benchmarks/run.py

check-gpu: $(VENV)/.installed
	$(PY) -m erase check-gpu

clean:
	rm -rf _build _output book/*.ipynb
