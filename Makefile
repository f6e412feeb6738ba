# The two commands of the README: `make up` (install, start everything, run the demo) and
# `make test` (lint, types, protos, and every test tier against a real stack).
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
UV_VERSION := 0.13.9
UV := python3 -m uv

.PHONY: setup up down status test test-containers lint protos-check protos-breaking browser \
	prometheus

setup:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --frozen
	npm install --prefix protos --no-audit --no-fund --loglevel=error
	$(UV) run tawasul-stack install

# In development spans go to the console: a JSON line each among the processes' logs.
up: export TAWASUL_TRACE_CONSOLE ?= true
up: setup
	$(UV) run tawasul-stack up
	$(UV) run tawasul-stack demo

down:
	$(UV) run tawasul-stack down

# Exit 3 (something is stopped) is the CLI's answer for scripts, not a failure of make's.
status:
	$(UV) run tawasul-stack status || [ $$? = 3 ]

lint:
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	cd protos && npx buf lint && npx buf format --diff --exit-code

# The generated contracts are committed; they must be what the protos generate now. git diff
# shows what changed but not a generated file nobody added: status --porcelain shows both.
protos-check:
	$(UV) run python libs/contracts/generate.py
	git diff --exit-code -- libs/contracts
	@left=$$(git status --porcelain -- libs/contracts); if [ -n "$$left" ]; then \
		printf '%s\n' "protos-check: generated files not committed:" "$$left"; exit 1; fi

# Contracts stay wire-compatible with the commit before: a renumbered or retyped field, or one
# deleted without reserving its number and name, fails (buf's WIRE_JSON rules).
protos-breaking:
	@if git rev-parse -q --verify HEAD~1 >/dev/null; then \
		cd protos && npx buf breaking --against '../.git#ref=HEAD~1,subdir=protos' && \
		echo "protos-breaking: wire-compatible with $$(git rev-parse --short HEAD~1)"; \
	else echo "protos-breaking: no previous commit to compare with"; fi

# The web page's tests drive Debian's Chromium (Playwright cannot download its own browsers
# here); the Noto fonts render its Arabic.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium fonts-noto-core; }

# Prometheus and promtool for the tests of the dashboard's queries and the alert rules: built
# into the cache once (6 min from nothing here), so not part of `setup`.
prometheus: setup
	$(UV) run tawasul-stack install --prometheus

test: setup browser prometheus lint protos-check protos-breaking
	$(UV) run pytest

# The container tiers (issue 13), when podman is installed: builds the images, runs the e2e
# journey with the infrastructure in containers (testcontainers), then the dev overlay under
# `podman kube play`; says which tiers ran. Not part of `make test`; .ci/run runs both.
test-containers: setup
	deploy/podman/test-containers.sh
