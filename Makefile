# ampnet: `make demo` trains, evaluates and reports on the built-in demo capture;
# `make test` runs the suite, `make test-fast` all but its slow tests. Both create .venv/ first (see `install`).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU build of torch; set TORCH_SPEC to install another (e.g. a CUDA build).
TORCH_SPEC ?= torch==2.13.0
# One pytest worker per core (up to 4), a test file per worker; each worker uses one thread
# (tests/conftest.py). PARALLEL= runs the suite in one process.
PARALLEL ?= -n auto --maxprocesses 4 --dist loadfile

.PHONY: install demo test test-fast lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $(STAMP)

demo: install
	$(PY) -m ampnet.train experiment=demo
	$(PY) -m ampnet.export ckpt=best

test: install
	@bash scripts/ensure_chromium.sh || echo "ampnet: no chromium: the HTML report rendering test will be skipped"
	$(PY) -m pytest -q $(PARALLEL)

# Everything but the tests marked slow (trainings, ampnet commands run in a subprocess as a
# user runs them, the browser check, the acceptance suite). `make test` (CI) runs them all.
test-fast: install
	$(PY) -m pytest -q -m "not slow" $(PARALLEL)

lint: install
	$(PY) -m ruff check ampnet tests scripts
	$(PY) -m ruff format --check ampnet tests scripts

format: install
	$(PY) -m ruff format ampnet tests scripts
	$(PY) -m ruff check --fix ampnet tests scripts

bench: install
	@for s in scripts/bench_*.py; do echo "== $$s"; $(PY) $$s || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
