# Two commands for a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# Installed at the versions pins/python.txt names (the suite's last green run); `make pins`
# moves them to the newest releases.
PINS := pins/python.txt
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(PINS) | cksum | cut -d' ' -f1)

.PHONY: demo test lint bench system-deps pins clean

$(STAMP): pyproject.toml $(PINS)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip -c $(PINS)
	$(PY) -m pip install -q -e '.[test]' -c $(PINS)
	rm -f $(VENV)/.installed-*
	touch $@

# What the test suite needs from the system (redis-server with TLS, etc.), installed if missing.
system-deps:
	@bash scripts/system-deps.sh

demo: $(STAMP)
	$(VENV)/bin/swarm demo
	PATH=$(VENV)/bin:$$PATH $(VENV)/bin/swarm pipeline run examples/pipeline/plan.toml

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

# Four workers on two cores: most tests wait on servers, subprocesses and leases rather than
# compute (a whole run on four used 1.4 cores of CPU time per second: 13:57 against 17:01 on
# three, the same day), so the extra workers fill the cores the waits leave idle. worksteal:
# a worker that runs out of tests takes some of another's, so a 20 s chaos test drawn last
# does not leave a core idle while it runs.
test: $(STAMP) system-deps lint
	$(VENV)/bin/pytest -n 4 --dist worksteal --durations=30

# The peers' figures need them installed (the `bench` extra; arq without its redis<6 cap).
bench: $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m pip install -q --no-deps 'arq==0.28.0'
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

# The pins (Python and the npm test clients) moved to the newest releases: then `make test`.
pins:
	bash scripts/update-pins.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
