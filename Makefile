# The two commands of the README, each self-sufficient on a fresh clone:
#   make demo   run the sandbox demo (no API key, no network)
#   make test   run the whole test suite
# Both create .venv and install core, plugins and dev tools on first use (and again when the
# requirements change).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast check lint format bench clean

$(STAMP): requirements-dev.txt pyproject.toml plugins/*/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# the demo's jobs go to .polybatch-demo (git-ignored), not into the user's own ledger
demo: export POLYBATCH_HOME = .polybatch-demo
demo: $(STAMP)
	$(BIN)/polybatch run examples/requests.jsonl --model openai:gpt-4o-mini --sandbox -o examples/results.openai.jsonl
	$(BIN)/polybatch run examples/requests.jsonl --model anthropic:claude-haiku-4-5 --sandbox -o examples/results.anthropic.jsonl

# three workers on CI's two cores: most tests wait on loopback HTTP, subprocesses and polls;
# every test has its own POLYBATCH_HOME and sandbox port, so they are independent (TEST_WORKERS=0
# runs them in one process)
TEST_WORKERS ?= 3
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

# everything but the tests marked slow (subprocesses, SIGKILL, large jobs, chaos runs)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) -m "not slow"

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV)
