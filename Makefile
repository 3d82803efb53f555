# `make demo` and `make test` do all the set-up on a fresh Debian machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
APT_PACKAGES := bind9 bind9-utils bind9-dnsutils haproxy

.PHONY: demo test test-fast lint pytest bench procmodel system-packages venv clean

# The whole story in under two minutes: see sandbox/demo.py. Exit status 0 only if every check
# passed.
demo: system-packages venv
	$(PY) -m sandbox.demo

test: system-packages venv lint pytest

# The unit tests alone (tests/unit: pure, nothing started), property tests at a tenth of their
# examples (tests/support/properties.py): under a minute, for the edit-test loop. `make test`
# runs everything, as CI does.
test-fast: venv
	AUTOSCALE_TESTS_FAST=1 $(VENV)/bin/pytest -q -m unit tests/unit

# Benchmarks (issue 7): prints a table and writes bench/results.json. See bench/run.py.
bench: system-packages venv
	$(PY) -m bench.run

# Issue 11: every sensor and action loaded in the processes StackStorm 3.9 builds, on Python
# 3.8-3.11 (pyenv), with the figures the README quotes. See st2harness/procmodel.py.
procmodel: venv
	$(PY) -m st2harness.procmodel

lint: venv
	$(VENV)/bin/ruff check --target-version py38 --line-length 100 .
	$(VENV)/bin/yamllint --strict .

pytest: venv
	$(VENV)/bin/pytest -q

# BIND9 and HAProxy: the tests start real ones on free loopback ports.
system-packages:
	@missing=""; \
	for cmd in named named-checkconf nsupdate dig haproxy; do \
	  command -v $$cmd >/dev/null 2>&1 || PATH="$$PATH:/usr/sbin" command -v $$cmd >/dev/null 2>&1 || missing=1; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing $(APT_PACKAGES)"; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	fi

venv: $(VENV)/.installed

# requirements-workflows.txt (orquesta, for the workflow tests) goes in last and with --no-deps:
# orquesta 1.2's metadata pins jsonschema<3, so its dependencies are listed there by hand.
$(VENV)/.installed: requirements.txt requirements-tests.txt requirements-workflows.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-tests.txt
	$(PY) -m pip install -q --no-deps -r requirements-workflows.txt
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis .procmodel
