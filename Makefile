# Developer entry points. Every target installs what it needs; see README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help demo test check up down purge crds venv tools bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

demo: ## the main job: bring up the local stack, run the operator and an example saga
	@hack/demo.sh

test: ## the whole suite: lint, types, layers, unit, integration and e2e tests
	@hack/test.sh

check: venv ## static checks only (ruff, mypy --strict, import layers)
	@hack/check.sh

up: ## start the local stack (cluster, PostgreSQL, Kafka) and write .dev/env
	@hack/up.sh

down: ## stop the local stack (data kept)
	@hack/down.sh

purge: ## stop the local stack and delete its data
	@hack/down.sh --purge

crds: venv ## regenerate crds/*.yaml (and the chart's copy) from operator/sagaz_operator/api
	@.venv/bin/python -m sagaz_operator.api.crdgen crds
	@cp crds/*.yaml charts/sagaz-operator/crds/

venv: ## create .venv with the package and dev tools
	@hack/venv.sh

tools: ## build or find the pinned cluster binaries (kube-apiserver, etcd, kwok, kubectl, helm)
	@hack/tools.sh

bench: ## compare the operator with Temporal, the sagaz library and the floor (QUICK=1: N <= 100; PROFILE=1 or PROFILE=d-fails: py-spy)
	@BENCH_COMMAND="make bench$(if $(QUICK), QUICK=1)$(if $(PROFILE), PROFILE=$(PROFILE))" \
	  hack/bench.sh $(if $(QUICK),--quick) $(if $(PROFILE),--profile $(if $(filter 1,$(PROFILE)),instant,$(PROFILE)))
