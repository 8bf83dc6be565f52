# Two commands on a fresh machine: `make demo` and `make test`.
# Needs python3 (with venv), Java 17+ and Maven; everything else comes from PyPI and Maven Central.

VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
KAFKA_LIB := infra/kafka/lib

.PHONY: demo test test-fast soak unit integration typecheck preflight bench install jars browser-deps litellm-env stop clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[server,test]'
	touch $@

install: $(STAMP)

$(KAFKA_LIB)/.fetched: infra/kafka/pom.xml
	mvn -q -B -f infra/kafka/pom.xml dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/$(KAFKA_LIB)
	touch $@

jars: $(KAFKA_LIB)/.fetched

# What the console's browser tests load into Chromium (axe-core), from the npm registry by its lock file.
BROWSER_DEPS := tests/browser/node_modules/.installed
$(BROWSER_DEPS): tests/browser/package-lock.json
	npm ci --prefix tests/browser --no-audit --no-fund --silent
	touch $@

browser-deps: $(BROWSER_DEPS)

# A LiteLLM proxy of its own environment, as its users run it, with aiaudit's callback installed
# beside it (`aiaudit[litellm]`): the LiteLLM tests and bench start it (tests/integration/test_litellm.py).
LITELLM_VERSION := 1.108.7
LITELLM_VENV    ?= .venv-litellm
LITELLM_STAMP   := $(LITELLM_VENV)/.installed-$(LITELLM_VERSION)
$(LITELLM_STAMP): pyproject.toml
	python3 -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/pip install -q --upgrade pip
	$(LITELLM_VENV)/bin/pip install -q 'litellm[proxy]==$(LITELLM_VERSION)' -e '.[litellm]'
	touch $@

litellm-env: $(LITELLM_STAMP)

demo: install jars
	$(VENV)/bin/aiaudit demo

test: preflight install jars browser-deps litellm-env typecheck
	$(VENV)/bin/pytest

# For development, in under 10 minutes: the type checker, every unit test, and the integration
# tests of the main path (emit, chain, sink, query, verify, export; the gateway; the store API).
FAST_INTEGRATION := tests/integration/test_end_to_end.py tests/integration/test_gateway.py \
                    tests/integration/test_store_api.py
test-fast: preflight install jars typecheck
	$(VENV)/bin/pytest tests/unit $(FAST_INTEGRATION)

# The fault tests at full length (more kill -9s, more events), three runs in a row: what `make
# test` runs once and shorter. Not part of `make test`. One test file, ten times:
#   make soak SOAK_RUNS=10 SOAK_TESTS=tests/integration/test_delivery_broker_down.py
SOAK_RUNS ?= 3
SOAK_TESTS ?=
soak: preflight install jars
	for i in $$(seq $(SOAK_RUNS)); do echo "soak run $$i of $(SOAK_RUNS)"; \
	  AIAUDIT_SOAK=1 $(VENV)/bin/pytest -m 'fault and not known_bug' $(SOAK_TESTS) || exit 1; done

# What the tests need from the machine (Java, Maven, rsyslogd with GnuTLS), named in one line.
preflight:
	@bash infra/preflight.sh

# Strict static types on the package ([tool.mypy] in pyproject.toml): a moved module or a name
# that does not exist fails here, not in a user's hands.
typecheck: install
	$(VENV)/bin/mypy

unit: install
	$(VENV)/bin/pytest tests/unit

integration: install jars browser-deps litellm-env
	$(VENV)/bin/pytest tests/integration

bench: install jars
	$(PY) bench/pipeline_bench.py

stop:
	-$(VENV)/bin/aiaudit infra down

clean: stop
	rm -rf .aiaudit $(VENV) $(KAFKA_LIB) .pytest_cache
