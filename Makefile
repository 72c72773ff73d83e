# Two commands for a fresh machine:  `make run` (install, build the demo models, serve) and `make test`.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
export UV_NO_EDITABLE := 1
EXTRAS ?= --extra serve --extra train
MODEL_ROOT ?= models
PYTEST_ARGS ?=
# grpcurl runs the README's grpcurl examples (tests/integration/test_readme.py); built into .bin/ with Go.
GRPCURL_VERSION := v1.9.3
GRPCURL := .bin/grpcurl-$(GRPCURL_VERSION)
# MinIO, a real S3-compatible server for the s3:// model store tests (tests/s3server.py). Its build takes minutes
# and the binary is about 150 MB, so it is cached per user, outside the checkout: repeat runs reuse it.
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
MINIO_CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/tuneserve/bin
MINIO := $(MINIO_CACHE)/minio-$(MINIO_VERSION)
# kube-apiserver, a real Kubernetes API server for the Kubernetes training executor tests (tests/kubeapi.py),
# built from the Go module proxy with tests/kubeapiserver/go.mod (minutes on a cold Go cache), cached beside MinIO.
# etcd, which it stores in, is Debian's etcd-server (.ci/run installs it).
KUBE_VERSION := v1.37.2
KUBE_APISERVER := $(MINIO_CACHE)/kube-apiserver-$(KUBE_VERSION)

.PHONY: install run demo test minio kube-apiserver test-go test-java lint proto proto-go proto-check deploy-check bench-quality bench-serve bench-retrain

install:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --locked $(EXTRAS)

demo: install
	.venv/bin/tuneserve demo --model-root $(MODEL_ROOT)

run: demo
	.venv/bin/tuneserve serve --model-root $(MODEL_ROOT)

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

# The tests also cover experiment tracking (MLflow, TensorBoard): the `tracking` extra, which no image
# installs, joins the train image's extras for the test run only.
test: lint $(GRPCURL) $(MINIO) $(KUBE_APISERVER)
	$(UV) sync --locked $(EXTRAS) --extra tracking
	GRPCURL=$(CURDIR)/$(GRPCURL) MINIO=$(MINIO) KUBE_APISERVER=$(KUBE_APISERVER) .venv/bin/pytest -q $(PYTEST_ARGS)
	$(MAKE) test-go
	$(MAKE) test-java

$(GRPCURL):
	@command -v go >/dev/null 2>&1 || { echo "grpcurl is built with Go: install Go >= 1.24"; exit 1; }
	GOBIN=$(CURDIR)/.bin/grpcurl-build go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)
	mv .bin/grpcurl-build/grpcurl $@ && rmdir .bin/grpcurl-build

# `make minio` builds it alone. Into a fresh folder beside the target, then one mv: an interrupted or
# concurrent build never leaves a partial binary under the cached name.
minio: $(MINIO)

$(MINIO):
	@command -v go >/dev/null 2>&1 || { echo "MinIO is built with Go: install Go >= 1.24"; exit 1; }
	mkdir -p $(MINIO_CACHE)
	set -e; tmp=$$(mktemp -d $(MINIO_CACHE)/minio-build.XXXXXX); \
	  trap 'rm -rf "$$tmp"' EXIT; \
	  GOBIN="$$tmp" go install github.com/minio/minio@$(MINIO_VERSION); \
	  mv "$$tmp/minio" $@

kube-apiserver: $(KUBE_APISERVER)

$(KUBE_APISERVER):
	@command -v go >/dev/null 2>&1 || { echo "kube-apiserver is built with Go: install Go >= 1.26"; exit 1; }
	mkdir -p $(MINIO_CACHE)
	set -e; tmp=$$(mktemp -d $(MINIO_CACHE)/kube-apiserver-build.XXXXXX); \
	  trap 'rm -rf "$$tmp"' EXIT; \
	  cd tests/kubeapiserver && go build -o "$$tmp/kube-apiserver" \
	    -ldflags "-X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION)" k8s.io/kubernetes/cmd/kube-apiserver; \
	  mv "$$tmp/kube-apiserver" $@

# The Go client, against a live server with tiny models (clients/testserver.py, from .venv). -count=1: go's
# test cache cannot see changes to the Python server, so a cached pass could hide a regression.
test-go: install
	cd clients/go && go vet ./... && go test -count=1 ./...

# The Java client (Maven, JDK >= 17), against the same live server; its stubs are generated from proto/ at build
# time. Batch mode and no download progress keep Maven non-interactive and quiet (also in .mvn/maven.config).
test-java: install
	cd clients/java && mvn -q -B --no-transfer-progress verify

proto: install
	PYTHON=.venv/bin/python proto/generate.sh

proto-go:
	clients/go/generate.sh

# Generated code must match the .proto files, and the contract must pass buf's lint.
proto-check: proto proto-go
	git diff --exit-code -- proto/gen clients/go/tuneservev1
	test -z "$$(git status --porcelain -- proto/gen clients/go/tuneservev1)"
	cd proto && npx --yes @bufbuild/buf@1.75.0 lint
	cd proto && npx --yes @bufbuild/buf@1.75.0 format -d --exit-code

# Deployment assets: lint the Dockerfile, render each Kubernetes overlay and validate every object offline
# (deploy/kubernetes/validate.py: schemas, and what each Deployment runs: image target, command, training
# on in the trainer only), validate the KServe runtime against KServe's vendored CRD schemas
# (deploy/kserve/validate.py), check and unit-test the alerting rules. hadolint and kubernetes-validate
# come with the dev group; kustomize is built into .bin/ with Go; promtool is Debian's prometheus package.
KUSTOMIZE_VERSION := v5.8.1
KUSTOMIZE := .bin/kustomize-$(KUSTOMIZE_VERSION)

$(KUSTOMIZE):
	@command -v go >/dev/null 2>&1 || { echo "kustomize is built with Go: install Go >= 1.24"; exit 1; }
	GOBIN=$(CURDIR)/.bin/$(KUSTOMIZE_VERSION) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	mv .bin/$(KUSTOMIZE_VERSION)/kustomize $@ && rmdir .bin/$(KUSTOMIZE_VERSION)

deploy-check: install $(KUSTOMIZE)
	.venv/bin/hadolint Dockerfile
	set -o pipefail; for overlay in deploy/kubernetes/overlays/*/; do \
	  echo "$$overlay"; $(KUSTOMIZE) build "$$overlay" | .venv/bin/python deploy/kubernetes/validate.py || exit 1; \
	done
	.venv/bin/python deploy/kserve/validate.py
	promtool check rules deploy/monitoring/alerts.yaml
	promtool test rules deploy/monitoring/alerts-test.yaml

bench-quality: install
	.venv/bin/python benchmarks/quality.py

bench-serve: install
	.venv/bin/python benchmarks/serve.py

bench-retrain: install
	.venv/bin/python benchmarks/retrain.py
