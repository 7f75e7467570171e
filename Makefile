# Two commands on a fresh machine: `make demo` and `make test`. Both build .venv themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-fast system-deps bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The main job on this machine: plan, provision two lab nodes, render, configure them (site.yml,
# then the Slurm control plane), start the cluster in its own network namespaces, run a two-node
# job and show its accounting record, health and summary (needs root for chroot and namespaces),
# then the cloud side offline: the multi-cloud stack's resource tree under Pulumi's mock engine,
# with the policy pack. The lab cluster keeps running; `.venv/bin/aifactory down stacks/lab` stops it.
demo: $(STAMP)
	@if [ "$$(id -u)" -ne 0 ]; then echo "make demo builds lab nodes with chroot: run it as root (sudo make demo)" >&2; exit 1; fi
	command -v debootstrap >/dev/null && command -v ip >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap iproute2)
	$(VENV)/bin/aifactory validate stacks/lab/factory.yaml
	$(VENV)/bin/aifactory up stacks/lab
	$(VENV)/bin/aifactory preview stacks/multicloud --policy

system-deps:
	bash tests/system-deps.sh

test: $(STAMP) system-deps
	$(PY) -m pytest

# The inner loop (< 60 s on 2 cores): no root filesystems, daemons or Ansible runs, the per-stack
# cases on two stacks (tests/conftest.py FAST_STACKS), a twenty-fifth of the fuzz cases, two workers.
test-fast: $(STAMP)
	AIFACTORY_FUZZ_SCALE=0.04 $(PY) -m pytest -m "not slow" -n 2

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) build dist .pytest_cache
