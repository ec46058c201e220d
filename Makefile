# Two targets a newcomer needs: `make book` and `make test`. Both create .venv on first use.
PYTHON ?= python3.11
VENV   ?= .venv
PY      = $(VENV)/bin/python
SCALE  ?= default
DEVICE ?= cpu

.PHONY: book test bench check-gpu mutants clean

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
	$(VENV)/bin/ruff check erase tests benchmarks
	$(PY) -m pytest

bench: $(VENV)/.installed
	$(PY) benchmarks/run.py

check-gpu: $(VENV)/.installed
	$(PY) -m erase check-gpu

# Mutation testing, a tool and not a CI step: mutmut (requirements-dev.txt) changes the engine,
# methods, scorecard and store one small edit at a time and runs the fast tests that reach each
# change (pyproject.toml, [tool.mutmut]); then the score per module and every surviving mutant.
# Hours on two cores: it runs at the lowest priority. `make mutants MUTANTS='erase.runs.store*'`
# runs only the mutants whose names match (module.x_function__mutmut_N).
MUTANTS ?=
$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.txt
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	touch $@

mutants: $(VENV)/.dev-installed
	nice -n 19 $(VENV)/bin/mutmut run $(if $(MUTANTS),"$(MUTANTS)")
	$(PY) benchmarks/mutation_scores.py

clean:
	rm -rf _build _output book/*.ipynb
