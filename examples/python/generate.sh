#!/usr/bin/env bash
# Generates the Python stubs of KeyAdmin (and google.rpc, for rich error details)
# from ../../proto into examples/python/gen/ (gitignored).
#
#   bash examples/python/generate.sh          # (re)generate gen/
#   bash examples/python/generate.sh --check  # exit 0 if a usable compiler is installed
#
# The compiler must support proto3 `optional` (protoc >= 3.15), which key_admin.proto
# uses. It is, in order of preference:
#   1. `python3 -m grpc_tools.protoc`, if the protoc bundled with grpc_tools is new
#      enough. Debian 12's python3-grpc-tools (1.14.1) bundles protoc 3.5.1, which is
#      NOT, so on Debian 12 the next one is used;
#   2. Debian's `protoc` (package protobuf-compiler, 3.21 on Debian 12) with the gRPC
#      plugin `grpc_python_plugin` (package protobuf-compiler-grpc). Its output
#      matches Debian's python3-protobuf runtime exactly.
# The google/protobuf well-known types come from grpc_tools (or /usr/include with
# libprotobuf-dev). No __init__.py files are written: gen/keyward and gen/google are
# namespace packages, so gen/google/rpc coexists with the installed google.protobuf;
# keyward_client.py puts gen/ on sys.path.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
py=${PYTHON:-/usr/bin/python3}
out="$here/gen"
protos=(keyward/admin/v1/key_admin.proto google/rpc/status.proto google/rpc/error_details.proto)

# True if "libprotoc X.Y[.Z]" (as printed by protoc --version) is >= 3.15.
version_ok() {
  local v=${1#libprotoc } major minor
  major=${v%%.*}
  minor=${v#*.}
  minor=${minor%%.*}
  [[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ ]] || return 1
  ((major > 3 || (major == 3 && minor >= 15)))
}

compiler=""
wkt_include=""
if wkt_include=$("$py" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))' 2>/dev/null); then
  if version_ok "$("$py" -m grpc_tools.protoc --version 2>/dev/null || true)"; then
    compiler=grpc_tools
  fi
else
  wkt_include=""
fi
if [[ -z $compiler ]] && command -v protoc >/dev/null 2>&1 && command -v grpc_python_plugin >/dev/null 2>&1 \
  && version_ok "$(protoc --version 2>/dev/null || true)"; then
  compiler=protoc
fi

if [[ ${1:-} == --check ]]; then
  if [[ -n $compiler ]]; then
    echo "generate.sh: would use $compiler"
    exit 0
  fi
  echo "generate.sh: no usable compiler (need grpc_tools with protoc >= 3.15, or protoc >= 3.15 and grpc_python_plugin)" >&2
  exit 1
fi
if [[ $# -gt 0 ]]; then
  echo "usage: $0 [--check]" >&2
  exit 2
fi

if [[ -z $compiler ]]; then
  {
    echo "generate.sh: no protoc that supports proto3 'optional' (>= 3.15) was found."
    echo "  grpc_tools (${py}): $("$py" -m grpc_tools.protoc --version 2>&1 | head -n1 || true)"
    echo "  protoc: $( (command -v protoc >/dev/null 2>&1 && protoc --version 2>&1) || echo 'not installed'); grpc_python_plugin: $(command -v grpc_python_plugin || echo 'not installed')"
    echo "  On Debian: apt-get install -y protobuf-compiler protobuf-compiler-grpc"
  } >&2
  exit 1
fi

rm -rf "$out"
mkdir -p "$out"
cd "$root"
case $compiler in
  grpc_tools)
    # grpc_tools.protoc adds its own _proto include (the well-known types).
    "$py" -m grpc_tools.protoc -I proto \
      --python_out="$out" --grpc_python_out="$out" "${protos[@]}"
    ;;
  protoc)
    includes=(-I proto)
    [[ -n $wkt_include && -f $wkt_include/google/protobuf/timestamp.proto ]] && includes+=(-I "$wkt_include")
    protoc "${includes[@]}" \
      --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" \
      --python_out="$out" --grpc_python_out="$out" "${protos[@]}"
    ;;
esac
echo "generate.sh: wrote $(find "$out" -name '*.py' | wc -l) files to ${out#"$root"/} (with $compiler)"
