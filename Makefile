# Two commands on a fresh machine (python3, node, npm): `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
KINESIS_MOCK := infra/kinesis-mock
KINESIS_MOCK_JS := $(KINESIS_MOCK)/node_modules/kinesis-local/main.js

.PHONY: demo test unit lint bench chaos clean install lock checkov image

install: $(VENV)/.installed $(KINESIS_MOCK_JS)

# Re-installs only when pyproject.toml or the C fast path of the decoder changes (the editable
# install compiles consumer/records/_speedups.c in place; gcc and the Python headers needed).
$(VENV)/.installed: pyproject.toml consumer/records/_speedups.c
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
	$(BIN)/mypy --strict consumer checkpoints tests/chaos
	@# The C fast path compiles without a single warning (skipped where there is no compiler).
	if command -v $(CC) >/dev/null; then $(CC) -fsyntax-only -Wall -Wextra -Werror \
	  -Wno-unused-parameter -I"$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" \
	  consumer/records/_speedups.c; fi

# Three pytest workers (each with its own local stack): the integration tests mostly wait on
# emulators and timers, so this cuts the wall time on 2 cores. Timing-sensitive tests (marked
# serial in tests/conftest.py) then run alone.
test: install lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 3 --dist loadfile -m "not serial"
	$(BIN)/python -m pytest -q -p no:cacheprovider -m serial

unit: install
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit

# The full chaos suite (several minutes); a short form runs in `make test`. SEED=N to repeat one.
chaos: install
	$(BIN)/python -m tests.chaos $(if $(SEED),--seed $(SEED))

bench: install
	@for f in tests/bench/bench_*.py; do $(BIN)/python $$f || exit 1; done

# The image's pinned runtime dependencies (regenerate after changing pyproject's dependencies).
lock: $(VENV)/.installed
	$(BIN)/python infra/freeze_runtime.py > infra/requirements.lock

# checkov pins old boto3/packaging, so it lives in its own venv.
checkov:
	test -x .venv-checkov/bin/checkov || ($(PYTHON) -m venv .venv-checkov && .venv-checkov/bin/pip install --quiet checkov==3.3.30)
	.venv-checkov/bin/checkov --compact --skip-download --framework cloudformation -f infra/cloudformation/service.yaml
	# checkov drops resources whose Condition is false: scan the OpenSearch domain too.
	mkdir -p build
	sed '/^  EnableOpenSearch:/,/Default:/ s/Default: "false"/Default: "true"/' infra/cloudformation/service.yaml > build/service-opensearch.yaml
	.venv-checkov/bin/checkov --compact --skip-download --framework cloudformation -f build/service-opensearch.yaml
	# ... and the scheduled verify task (off by default).
	sed '/^  VerifySchedule:/,/Default:/ s/Default: ""/Default: "cron(0 3 * * ? *)"/' infra/cloudformation/service.yaml > build/service-verify.yaml
	.venv-checkov/bin/checkov --compact --skip-download --framework cloudformation -f build/service-verify.yaml
	.venv-checkov/bin/checkov --compact --skip-download --framework cloudformation -f infra/cloudformation/lambda-streams.yaml
	.venv-checkov/bin/checkov --compact --skip-download --framework dockerfile -f infra/Dockerfile

# Needs a Docker engine (none on the development machines here).
image:
	docker build -f infra/Dockerfile -t ddb-cdc-consumer:0.1.0 .

clean:
	-$(BIN)/consumer local down 2>/dev/null
	rm -rf $(VENV) .venv-checkov $(KINESIS_MOCK)/node_modules .local-stack .local-search build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
