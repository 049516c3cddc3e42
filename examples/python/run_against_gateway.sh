#!/usr/bin/env bash
# Runs the Python example client against a development gateway of its own, as CI does:
# a virtual environment with requirements.txt, stubs generated from proto/, a debug `ipexd`
# on a free loopback port with its PKI and store in a temporary directory, the client, then
# SIGTERM to the gateway. Exits with the client's status. Run it from anywhere:
#
#   bash examples/python/run_against_gateway.sh
#
# Needs python3 with the venv module (Debian: python3-venv), cargo, and access to PyPI.
# IPEXD=<path> uses that ipexd binary instead of building one.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/ipex-python.XXXXXX")"
ipexd_pid=""
ipexd_status=0

stop_gateway() {
  # SIGTERM: the gateway drains, flushes its store and exits 0; SIGKILL if it hangs.
  if [[ -n "$ipexd_pid" ]] && kill -0 "$ipexd_pid" 2>/dev/null; then
    kill -TERM "$ipexd_pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
      kill -0 "$ipexd_pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$ipexd_pid" 2>/dev/null; then
      echo "ipexd did not stop within 15 s of SIGTERM; killing it" >&2
      kill -KILL "$ipexd_pid" 2>/dev/null || true
    fi
  fi
  if [[ -n "$ipexd_pid" ]]; then
    ipexd_status=0
    wait "$ipexd_pid" 2>/dev/null || ipexd_status=$?
    ipexd_pid=""
  fi
}
cleanup() {
  stop_gateway
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "python client: virtual environment in $tmp/venv"
python3 -m venv "$tmp/venv"
py="$tmp/venv/bin/python"
"$py" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
"$py" -m pip list --disable-pip-version-check 2>/dev/null | grep -Ei '^(grpcio|grpcio-tools|protobuf|cryptography) '

PYTHON="$py" bash "$here/generate.sh" "$tmp/stubs"

if [[ -n "${IPEXD:-}" ]]; then
  ipexd="$IPEXD"  # a gateway binary built elsewhere
else
  echo "python client: building ipexd"
  (cd "$root" && cargo build --locked --bin ipexd)
  target_dir="${CARGO_TARGET_DIR:-target}"
  [[ "$target_dir" == /* ]] || target_dir="$root/$target_dir"
  ipexd="$target_dir/debug/ipexd"
fi

free_port() {
  "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port_open() {
  "$py" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1" 2>/dev/null
}

# Start a development gateway (no --config) on a free port; try another port if the one we
# picked was taken in the meantime.
certs="$tmp/certs/dev"
started=""
for attempt in 1 2 3; do
  port="$(free_port)"
  echo "python client: starting ipexd on 127.0.0.1:$port (attempt $attempt)"
  # Development mode also serves metrics, on 127.0.0.1:9464 or a free port when another
  # gateway holds that one: ask for a free loopback port outright, as nothing here reads them.
  (cd "$tmp" && exec env -u IPEX_CONFIG IPEX_METRICS_LISTEN=127.0.0.1:0 \
    RUST_LOG="${RUST_LOG:-info}" "$ipexd" \
    --listen "127.0.0.1:$port" --dev-certs-dir "$certs" --data-dir "$tmp/data") \
    >"$tmp/ipexd.log" 2>&1 &
  ipexd_pid=$!
  # Development mode creates the PKI before it listens; wait for both.
  for _ in $(seq 1 600); do
    kill -0 "$ipexd_pid" 2>/dev/null || break
    if [[ -f "$certs/ca.pem" && -f "$certs/rilo-we.key" ]] && port_open "$port"; then
      started=yes
      break
    fi
    sleep 0.1
  done
  [[ -n "$started" ]] && break
  echo "ipexd did not start:" >&2
  tail -n 20 "$tmp/ipexd.log" >&2 || true
  stop_gateway
done
if [[ -z "$started" ]]; then
  echo "python-client: 0 passed, 1 failed"
  exit 1
fi

echo "python client: running ipex_client.py against 127.0.0.1:$port"
status=0
(cd "$root" && IPEX_PY_STUBS="$tmp/stubs" "$py" "$here/ipex_client.py" \
  --gateway "127.0.0.1:$port" --certs-dir "$certs" --timeout 20) || status=$?
if [[ "$status" -eq 0 ]]; then
  echo "python client: checking the envelope signature test vector"
  IPEX_PY_STUBS="$tmp/stubs" "$py" "$here/verify_signature.py" \
    "$root/examples/signatures/vector.json" || status=$?
fi

stop_gateway
if [[ "$ipexd_status" -ne 0 ]]; then
  echo "warning: ipexd exited with status $ipexd_status after SIGTERM" >&2
fi
if [[ "$status" -ne 0 ]]; then
  echo "--- ipexd log (last 40 lines)" >&2
  tail -n 40 "$tmp/ipexd.log" >&2 || true
  echo "python-client: 0 passed, 1 failed"
else
  echo "python-client: 1 passed, 0 failed"
fi
exit "$status"
