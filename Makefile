# Two commands on a fresh machine (python3, node, npm): `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
KINESIS_MOCK := infra/kinesis-mock
KINESIS_MOCK_JS := $(KINESIS_MOCK)/node_modules/kinesis-local/main.js

.PHONY: demo test unit lint bench chaos clean install

install: $(VENV)/.installed $(KINESIS_MOCK_JS)

# Re-installs only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# kinesis-mock at the version pinned in infra/kinesis-mock/package-lock.json.
$(KINESIS_MOCK_JS): $(KINESIS_MOCK)/package.json $(KINESIS_MOCK)/package-lock.json
	cd $(KINESIS_MOCK) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: install
	$(BIN)/consumer demo

lint: $(VENV)/.installed
	$(BIN)/ruff check consumer checkpoints tests
	$(BIN)/mypy --strict consumer checkpoints

test: install lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

unit: install
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit

bench: install
	@for f in tests/bench/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	-$(BIN)/consumer local down 2>/dev/null
	rm -rf $(VENV) $(KINESIS_MOCK)/node_modules .local-stack build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
