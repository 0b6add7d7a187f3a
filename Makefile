# fusionrec set-up: `make test` and `make demo` work on a fresh machine (Python 3.10+, pip, a package registry).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fusionrec-installed
DEMO_OUT ?= runs/demo

.PHONY: install test test-fast demo clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23"
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

test: install
	$(PY) -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; fi; exit $$rc

test-fast: install
	$(PY) -m pytest -q -m "not slow"

demo: install
	$(PY) -m fusionrec.jobs.demo --out $(DEMO_OUT)

clean:
	rm -rf $(VENV) runs .pytest_cache
