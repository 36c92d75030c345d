# Two commands after cloning: `make serve` and `make test`. Both create or reuse .venv.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
SERVE_ARGS ?=
# llama.cpp's native build crashes on AVX-512/AMX machines; build portable code instead.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF

.PHONY: install serve test lint bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The pinned CPU build first: anything looser pulls gigabytes of CUDA packages.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

serve: install
	$(VENV)/bin/ceruleum serve --dev $(SERVE_ARGS)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/serve.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
