#!/usr/bin/env bash
# Regenerate the Python code of the tuneserve.v1 API (proto/tuneserve/v1/*.proto) into proto/gen/python:
# *_pb2.py (messages), *_pb2.pyi (type stubs) and *_pb2_grpc.py (gRPC stubs and servicers), importable as
# `tuneserve.v1.<file>_pb2`; and of the Open Inference Protocol (proto/inference/, package `inference`)
# into proto/gen/python/tuneserve/oip, importable as `tuneserve.oip.open_inference_grpc_pb2` (its gRPC
# module's import of the messages is rewritten to that name, as KServe and Triton do for their copies).
# Never edit the output by hand.
#
# Usage: proto/generate.sh            (from any directory)
#   PYTHON=/path/to/python proto/generate.sh   to use another interpreter with grpcio-tools installed
#                                              (default: <repo>/.venv/bin/python).
# Freshness check in CI:
#   proto/generate.sh && git diff --exit-code -- proto/gen && test -z "$(git status --porcelain -- proto/gen)"
set -euo pipefail

proto_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(dirname "$proto_dir")"
python="${PYTHON:-$repo_dir/.venv/bin/python}"
out_dir="proto/gen/python"

cd "$repo_dir"
# Remove everything generated before, so files of deleted or renamed .proto files do not linger.
rm -rf "$out_dir"
mkdir -p "$out_dir"

mapfile -t protos < <(find proto/tuneserve proto/inference -name '*.proto' | LC_ALL=C sort)
# `python -m grpc_tools.protoc` adds grpcio-tools' bundled include path, so google/protobuf/*.proto resolve.
"$python" -m grpc_tools.protoc -I proto \
  --python_out="$out_dir" --pyi_out="$out_dir" --grpc_python_out="$out_dir" \
  "${protos[@]}"

# tuneserve/v1 is a regular package; tuneserve/ itself deliberately has no __init__.py (the build merges
# these modules into the tuneserve package).
: >"$out_dir/tuneserve/v1/__init__.py"
# The Open Inference Protocol's package is `inference`: moved under tuneserve/ rather than installed as a
# top-level `inference` module.
mkdir -p "$out_dir/tuneserve/oip"
for f in "$out_dir"/inference/*; do
  sed 's/^from inference import /from tuneserve.oip import /' "$f" >"$out_dir/tuneserve/oip/$(basename "$f")"
done
rm -r "$out_dir/inference"
: >"$out_dir/tuneserve/oip/__init__.py"

echo "generated $(find "$out_dir" -type f | wc -l) files in $out_dir with $("$python" -m grpc_tools.protoc --version)"
