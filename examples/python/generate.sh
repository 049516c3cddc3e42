#!/usr/bin/env bash
# Generates the Python stubs of ipex.v1 from proto/ into examples/python/generated/ (or the
# directory given as the first argument). Needs the packages of requirements.txt:
#
#   python3 -m pip install -r examples/python/requirements.txt
#   bash examples/python/generate.sh
#
# The stubs import each other as `ipex.v1.*_pb2`, so put the output directory on sys.path
# (ipex_client.py does). google/protobuf/*.proto come with grpcio-tools.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$here/generated}"
python="${PYTHON:-python3}"

rm -rf "$out"
mkdir -p "$out"
cd "$root"
"$python" -m grpc_tools.protoc -I proto \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  proto/ipex/v1/*.proto
echo "generated $(find "$out" -name '*.py' | wc -l) Python modules in $out"
