# SAM CLI targets, included by the project's Makefile (`include infra/sam.mk`).
#
# The SAM CLI lives in its own virtualenv (.venv-sam): it pins its own boto3/botocore,
# which would fight the project's .venv. Nothing here needs Docker or AWS credentials;
# `sam-build` needs PyPI (the layer's wheels), `sam-validate` needs no network at all.
#
#   make sam-env        create .venv-sam with the pinned aws-sam-cli
#   make sam-validate   cfn-lint (from .venv) + sam validate --lint
#   make sam-build      sam build (layer wheels for ARCH, project code, .pyc for the runtime)
#   make sam-check      both
#   make sam-smoke      run every handler from the built artifact alone (clean python3.12 venv,
#                       layer + function code on PYTHONPATH) against moto; prints cold imports
#
# ARCH=arm64 builds for Graviton; deploy with the same --parameter-overrides Architecture=arm64.

# Resolved once, at include time: the folder holding template.yaml, wherever make runs from.
SAM_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)

SAM_CLI_VERSION ?= 1.170.0
SAM_VENV ?= $(SAM_ROOT)/.venv-sam
SAM ?= $(SAM_VENV)/bin/sam
SAM_BOOTSTRAP_PYTHON ?= python3
CFN_LINT ?= $(SAM_ROOT)/.venv/bin/cfn-lint
ARCH ?= x86_64

# Telemetry off: it is a network call, and CI has no network but the package registries.
# A region is required by some SAM code paths even offline; any will do for build/validate.
SAM_RUN = cd "$(SAM_ROOT)" && SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1}

.PHONY: sam-env sam-validate sam-build sam-check sam-smoke

sam-env: $(SAM)

$(SAM):
	$(SAM_BOOTSTRAP_PYTHON) -m venv "$(SAM_VENV)"
	"$(SAM_VENV)/bin/pip" install --quiet --disable-pip-version-check "aws-sam-cli==$(SAM_CLI_VERSION)"
	"$(SAM)" --version

sam-validate: $(SAM)
	cd "$(SAM_ROOT)" && "$(CFN_LINT)" template.yaml
	$(SAM_RUN) "$(SAM)" validate --lint --template template.yaml

sam-build: $(SAM)
	$(SAM_RUN) LAMBDA_ARCH=$(ARCH) "$(SAM)" build --template template.yaml \
		--parameter-overrides Architecture=$(ARCH)
	@du -sh "$(SAM_ROOT)/.aws-sam/build"/* | sed 's|$(SAM_ROOT)/||'

sam-check: sam-validate sam-build

# Needs `make sam-build` first (CI runs sam-check before it); the driver runs in .venv.
sam-smoke: $(STAMP)
	cd "$(SAM_ROOT)" && "$(SAM_ROOT)/.venv/bin/python" -m infra.artifact_smoke --build-dir "$(SAM_ROOT)/.aws-sam/build"
