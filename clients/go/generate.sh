#!/usr/bin/env bash
# Regenerate the Go code of the tuneserve.v1 API (proto/tuneserve/v1/*.proto) into clients/go/tuneservev1:
# *.pb.go (messages) and *_grpc.pb.go (gRPC clients and servers). Never edit the output by hand.
#
# The plugins are pinned below and installed with `go install` into clients/go/bin (ignored by git);
# buf runs them with proto/buf.gen.go.yaml.
# Freshness check in CI (`make proto-check`):
#   clients/go/generate.sh && git diff --exit-code -- clients/go/tuneservev1
set -euo pipefail

PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
BUF="${BUF:-npx --yes @bufbuild/buf@1.75.0}"

go_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(cd "$go_dir/../.." && pwd)"
bin_dir="$go_dir/bin"
out_dir="$go_dir/tuneservev1"

# Install a plugin unless the pinned version is already there (`go version -m` reads the binary's module).
install() {
  local pkg="$1" version="$2" name
  name="$(basename "$pkg")"
  if [[ "$(go version -m "$bin_dir/$name" 2>/dev/null | awk '$1 == "mod" { print $3 }')" != "$version" ]]; then
    GOBIN="$bin_dir" go install "$pkg@$version"
  fi
}
install google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"
install google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"

# Remove everything generated before, so files of deleted or renamed .proto files do not linger.
rm -rf "$out_dir"
cd "$repo_dir/proto"
$BUF generate --template buf.gen.go.yaml

echo "generated $(find "$out_dir" -type f | wc -l) files in clients/go/tuneservev1"
