# kovn — one Makefile for set-up, code generation, checks, tests, benchmarks
# and the sandbox. Every target that needs packages depends on `setup`, which
# installs Debian and PyPI packages only when something is missing (safe to
# run again).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.kovn-setup

# Debian packages the services, the sandbox and the tests run against.
DEBS := openvswitch-switch ovn-central ovn-host etcd-server python3-openvswitch \
        iproute2 iputils-ping ethtool containernetworking-plugins iperf3 busybox-static runc \
        nftables iptables conntrack podman procps psmisc dnsmasq-base dnsutils

.PHONY: setup protos lint test test-unit test-integration test-e2e bench bench-quick sandbox sandbox-down clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@missing=""; for p in $(DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip >/dev/null
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m services.common.ovs_accel --install
	@touch $@

protos: setup
	$(PY) -m services.common.protogen

lint: setup
	$(VENV)/bin/ruff check services cni_shim sandbox tests bench
	$(VENV)/bin/ruff format --check services cni_shim sandbox tests bench
	$(VENV)/bin/mypy services cni_shim sandbox bench

test: setup
	$(PY) -m pytest -q -p no:cacheprovider tests

test-unit: setup
	$(PY) -m pytest -q -p no:cacheprovider tests/unit

test-integration: setup
	$(PY) -m pytest -q -p no:cacheprovider tests/integration

test-e2e: setup
	$(PY) -m pytest -q -p no:cacheprovider tests/e2e

bench: setup
	$(PY) -m bench

bench-quick: setup
	$(PY) -m bench --quick

sandbox: setup
	$(VENV)/bin/kovn sandbox up --nodes 2 --demo

sandbox-down: setup
	$(VENV)/bin/kovn sandbox down

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
