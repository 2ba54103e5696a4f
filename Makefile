# Maintainer tasks of the Petory deployment template (not generated: copier.yml's `_subdirectory:
# template` keeps this file out of every rendered repository). `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -Eeuo pipefail -c
.DEFAULT_GOAL := help
# tools/release.py needs only the standard library, so any python3 runs it.
PYTHON ?= python3

.PHONY: help test release

help: ## List the tasks
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

test: ## Run the test suite: tests/run.sh (as root to prepare the machine); ARGS=--static skips Docker
	tests/run.sh $(ARGS)

release: ## Release VERSION (PEP 440, e.g. 0.3.0): CHANGELOG's Unreleased entries, pyproject version, commit, tag
	@test -n "$(VERSION)" || { echo "Set VERSION to the new release, e.g. make release VERSION=0.3.0" >&2; exit 2; }
	$(PYTHON) tools/release.py prepare '$(VERSION)' $(if $(DATE),--date '$(DATE)')
