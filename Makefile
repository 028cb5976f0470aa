# landmarks: every step of the pipeline is a target; `make report` runs them all.
#   make report            fresh machine -> reports/html/report.html (embedded sample)
#   make report PARAMS=params/study-2018.yaml
#   make check (the inner loop, about 2 minutes) | make test (the whole suite) | make lint | make format | make lab | make bench | make clean
#   make report GPU=1 PARAMS=params/gpu.yaml          a GPU box: CUDA JAX from the registry, KERAS_BACKEND=jax
#   make report GPU=1 SYSTEM_SITE=1 PARAMS=params/gpu.yaml   the same on the image's preinstalled CUDA JAX
# Steps (each reads the previous one's files from disk):
#   sample -> explore (01) -> fetch (02) -> train (03) -> benchmark (04) -> visualize (05) -> html (06)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PARAMS ?= params/default.yaml
OUT    ?=
OUTARG := $(if $(OUT),--out $(OUT))
# GPU=1: the `gpu` extra (jax[cuda12]) and KERAS_BACKEND=jax, checked for a GPU before anything runs.
# SYSTEM_SITE=1: the venv sees the interpreter's packages (a deep-learning image's CUDA JAX or PyTorch);
# pip then installs only what is missing, and GPU=1 adds no second CUDA stack.
GPU         ?=
SYSTEM_SITE ?=
COMMA  := ,
# knn: FAISS, so that the tests compare it with the NumPy search (optional for users, not for the tests).
EXTRAS := dev$(COMMA)knn$(if $(GPU),$(if $(SYSTEM_SITE),,$(COMMA)gpu))
STAMP  := $(VENV)/.installed$(if $(GPU),-gpu)$(if $(SYSTEM_SITE),-system)
ifneq ($(GPU),)
export KERAS_BACKEND ?= jax
endif
GPU_CHECK := $(if $(GPU),$(BIN)/python -m landmarklib.devices --require gpu >/dev/null)

.PHONY: install sample report explore fetch train benchmark visualize html lint format test check lab bench bench-gpu clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(if $(SYSTEM_SITE),--system-site-packages) $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	$(BIN)/python -m ipykernel install --sys-prefix --name landmarks --display-name "Python (landmarks)" >/dev/null
	touch $@

install: $(STAMP)

sample: install
	$(BIN)/landmarks sample data/raw/sample

report: sample
	$(GPU_CHECK)
	$(BIN)/landmarks report --params $(PARAMS) $(OUTARG)

explore: sample
	$(BIN)/landmarks report --params $(PARAMS) $(OUTARG) --only 01
fetch: sample
	$(BIN)/landmarks report --params $(PARAMS) $(OUTARG) --only 02
train: install
	$(BIN)/landmarks report --params $(PARAMS) $(OUTARG) --only 03
benchmark: install
	$(BIN)/landmarks report --params $(PARAMS) $(OUTARG) --only 04
visualize: install
	$(BIN)/landmarks report --params $(PARAMS) $(OUTARG) --only 05
html: install
	$(BIN)/landmarks report --params $(PARAMS) $(OUTARG) --only 06

# ruff, configured in pyproject.toml (rules, 120 columns); `make format` rewrites, `make lint` only checks.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The whole suite (what CI runs): tests/unit, tests/notebooks (papermill), tests/end_to_end (`landmarks report`,
# Dask, Chromium); about 35 minutes on 2 cores.
test: lint
	$(BIN)/python -m pytest -q

# The inner loop, about 2 minutes on 2 cores (2 min 7 s in a fresh clone at 67d3bf9): lint, the fast unit tests (on every core: pytest-xdist), one
# notebook through papermill. `make test` stays serial: its notebooks and end-to-end runs use every core already.
check: lint
	$(BIN)/python -m pytest -q -n auto -m "not slow" tests/unit
	$(BIN)/python -m pytest -q tests/notebooks/test_notebook_01.py

lab: install
	$(BIN)/jupyter lab notebooks/

# img2dataset (the fetch benchmark's comparison) needs pandas<3: it gets a venv of its own.
.venv-bench/bin/img2dataset:
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install -q img2dataset

bench: install .venv-bench/bin/img2dataset
	$(BIN)/python benchmarks/fetch.py
	$(BIN)/python benchmarks/train_input.py
	$(BIN)/python benchmarks/backends.py
	$(BIN)/python benchmarks/real_landmarks.py

# on a GPU box (benchmarks/gpu.py's docstring: the run on a lent machine without a registry)
bench-gpu: install
	KERAS_BACKEND=jax $(BIN)/python benchmarks/gpu.py

# Generated outputs only: every tracked file (the folders' README.md, reports/benchmarks/*.md) stays.
clean:
	rm -rf data/raw data/interim data/processed reports/metrics reports/figures reports/notebooks reports/html
	find models -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
