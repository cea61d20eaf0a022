# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp-install
EXTRAS ?= lambda,worker,train,dev

.PHONY: setup test test-fast lint format demo bench clean build-DatasetTriggerFunction template-check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The CPU build of torch lies on disk; install it first so nothing pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	touch $(STAMP)

setup: $(STAMP)

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: setup
	$(BIN)/peoplenet-retrain demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# ---- AWS: the trigger Lambda's artefact (SAM `BuildMethod: makefile`) and the offline template checks ----
LAMBDA_PYTHON ?= python3.11
SAM_VENV ?= .venv-sam
SAM := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(SAM_VENV)/bin/sam
# The torch- and docker-free part of gpu_worker the trigger imports (tests/aws/test_lambda_artefact.py checks it).
LAMBDA_GPU_WORKER := gpu_worker/__init__.py gpu_worker/config.py gpu_worker/errors.py gpu_worker/intake.py \
	gpu_worker/adapters gpu_worker/ports gpu_worker/pipeline/__init__.py gpu_worker/pipeline/layout.py
# The Lambda runtime provides boto3 and its dependencies; aws-xray-sdk pulls in a botocore that would
# shadow the runtime's (and mismatch its boto3), so it is removed from the artefact.
LAMBDA_RUNTIME_PROVIDED := boto3 boto3-* botocore botocore-* s3transfer s3transfer-* urllib3 urllib3-* \
	dateutil python_dateutil-* six.py six-* bin

build-DatasetTriggerFunction:
	@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set (sam build sets it)"; exit 2; }
	$(LAMBDA_PYTHON) -m pip install -q --disable-pip-version-check --root-user-action=ignore --target "$(ARTIFACTS_DIR)" \
		--platform manylinux2014_x86_64 --implementation cp --python-version 3.11 --only-binary=:all: \
		-r lambdas/requirements.txt
	cd "$(ARTIFACTS_DIR)" && rm -rf $(LAMBDA_RUNTIME_PROVIDED)
	tar -c --exclude=__pycache__ --exclude='*.pyc' lambdas peoplenet_contracts $(LAMBDA_GPU_WORKER) \
		| tar -x -C "$(ARTIFACTS_DIR)"

$(SAM_VENV)/.stamp-sam:
	$(LAMBDA_PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install -q --upgrade pip
	# Its own venv: aws-sam-translator pins pydantic narrower than the project does.
	$(SAM_VENV)/bin/python -m pip install -q aws-sam-cli cfn-lint
	touch $@

# Offline checks of template.yaml: SAM validation + lint, cfn-lint on the expanded template, a build
# of the function, and the IAM least-privilege test on the expanded template.
template-check: setup $(SAM_VENV)/.stamp-sam
	$(SAM) validate --lint --template template.yaml
	$(SAM_VENV)/bin/python tools/expand_sam.py template.yaml build/template.expanded.json
	$(SAM_VENV)/bin/cfn-lint build/template.expanded.json
	$(SAM) build DatasetTriggerFunction --template template.yaml --build-dir build/sam --build-in-source
	PEOPLENET_EXPANDED_TEMPLATE=build/template.expanded.json PEOPLENET_LAMBDA_ARTEFACT=build/sam/DatasetTriggerFunction \
		$(BIN)/python -m pytest -q tests/aws/test_template.py tests/aws/test_lambda_artefact.py
