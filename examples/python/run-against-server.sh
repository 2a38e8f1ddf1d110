#!/usr/bin/env bash
# CI smoke test of the Python example against the real, built server.
#
# Starts `node dist/cli/main.js serve` (run `npm run build` first) on free ports with a
# throw-away SQLite database and a random administrator token, waits for KeyAdmin to
# accept connections, generates the stubs, runs keyward_client.py and checks what it
# prints, then checks that a wrong token is refused. The server is stopped on exit.
# Exits non-zero, saying what failed, on any failure.
#
#   bash examples/python/run-against-server.sh
#
# PYTHON overrides the interpreter (default /usr/bin/python3, with Debian's
# python3-grpcio).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
py=${PYTHON:-/usr/bin/python3}
startup_deadline_seconds=20

log() { echo "run-against-server: $*"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/keyward-python-smoke.XXXXXX")
server_pid=""

show_server_log() {
  if [[ -s $tmp/server.log ]]; then
    echo "----- server log (last 40 lines) -----" >&2
    tail -n 40 "$tmp/server.log" >&2 || true
    echo "--------------------------------------" >&2
  fi
}

fail() {
  echo "run-against-server: FAILED: $*" >&2
  show_server_log
  exit 1
}

stop_server() {
  local rc=$?
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$server_pid" 2>/dev/null; then
      echo "run-against-server: server did not stop on SIGTERM within 5 s; killing it" >&2
      kill -KILL "$server_pid" 2>/dev/null || true
    fi
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cd "$root"

# --- preconditions ---------------------------------------------------------------
[[ -f dist/cli/main.js ]] || fail "dist/cli/main.js is missing; run 'npm run build' first"
command -v node >/dev/null 2>&1 || fail "node is not on PATH"
[[ -x $py ]] || fail "$py not found"
"$py" -c 'import grpc' 2>/dev/null || fail "$py cannot import grpc; on Debian: apt-get install -y python3-grpcio"

# --- settings ----------------------------------------------------------------------
# Two distinct free ports, both held open while they are picked.
read -r admin_port authz_port < <("$py" -c '
import socket
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])
a.close(); b.close()
') || fail "could not pick free ports"
[[ $admin_port =~ ^[0-9]+$ && $authz_port =~ ^[0-9]+$ ]] || fail "could not pick free ports (got '$admin_port' '$authz_port')"

token=""
while ((${#token} < 16)); do
  token=$(head -c 24 /dev/urandom | base64 | tr -d '/+=\n')
done
wrong_token="wrong-${token}"

# --- start the server -----------------------------------------------------------
log "starting the server: admin 127.0.0.1:$admin_port, authz 127.0.0.1:$authz_port, sqlite:$tmp/kw.db"
env -u KEYWARD_ADMIN_TOKEN_FILE -u KEYWARD_HASH_SECRET -u KEYWARD_HASH_SECRET_FILE \
  KEYWARD_DATABASE_URL="sqlite:$tmp/kw.db" \
  KEYWARD_ADMIN_TOKEN="$token" \
  KEYWARD_ADMIN_LISTEN="127.0.0.1:$admin_port" \
  KEYWARD_AUTHZ_LISTEN="127.0.0.1:$authz_port" \
  KEYWARD_LOG_LEVEL=info \
  node dist/cli/main.js serve </dev/null >"$tmp/server.log" 2>&1 &
server_pid=$!

# Generate the stubs while the server starts.
log "generating the Python stubs"
bash "$here/generate.sh" || fail "generate.sh failed"

# --- wait for KeyAdmin to accept connections ------------------------------------
deadline=$((SECONDS + startup_deadline_seconds))
until (exec 3<>"/dev/tcp/127.0.0.1/$admin_port") 2>/dev/null; do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    wait "$server_pid" 2>/dev/null && status=0 || status=$?
    server_pid=""
    fail "the server exited (status $status) before 127.0.0.1:$admin_port accepted connections"
  fi
  if ((SECONDS >= deadline)); then
    fail "127.0.0.1:$admin_port did not accept connections within ${startup_deadline_seconds} s"
  fi
  sleep 0.2
done
log "KeyAdmin accepts connections on 127.0.0.1:$admin_port"

# --- the client with the right token ---------------------------------------------
export KEYWARD_ADMIN_URL="127.0.0.1:$admin_port"
unset KEYWARD_ADMIN_TOKEN_FILE

set +e
KEYWARD_ADMIN_TOKEN="$token" "$py" "$here/keyward_client.py" ci-python-smoke >"$tmp/client.out" 2>"$tmp/client.err"
client_status=$?
set -e
if ((client_status != 0)); then
  fail "keyward_client.py exited $client_status; stderr: $(cat "$tmp/client.err"); stdout: $(cat "$tmp/client.out")"
fi

# Checks the one JSON line; prints what is wrong, if anything.
"$py" - "$tmp/client.out" <<'PY' || fail "unexpected client output: $(cat "$tmp/client.out")"
import json, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
if len(lines) != 1:
    sys.exit(f"expected exactly one line of output, got {len(lines)}")
try:
    out = json.loads(lines[0])
except ValueError as e:
    sys.exit(f"output is not JSON: {e}")
problems = []
if not isinstance(out, dict):
    sys.exit("output is not a JSON object")
if set(out) != {"organization_id", "key_id", "key_prefix", "listed"}:
    problems.append(f"unexpected fields {sorted(out)}")
if not str(out.get("organization_id", "")).startswith("org_"):
    problems.append(f"organization_id {out.get('organization_id')!r} does not start with org_")
if not str(out.get("key_id", "")).startswith("key_"):
    problems.append(f"key_id {out.get('key_id')!r} does not start with key_")
if not str(out.get("key_prefix", "")).startswith("kw_test_"):
    problems.append(f"key_prefix {out.get('key_prefix')!r} does not start with kw_test_")
if out.get("listed") != 1:
    problems.append(f"listed is {out.get('listed')!r}, expected 1")
if problems:
    sys.exit("; ".join(problems))
PY

# The full secret must appear nowhere in what the client printed.
if grep -Eq 'kw_(live|test)_[0-9A-Za-z]{49}' "$tmp/client.out" "$tmp/client.err"; then
  fail "the client printed a full API key"
fi
log "client OK: $(cat "$tmp/client.out")"

# --- the client with a wrong token -----------------------------------------------
set +e
KEYWARD_ADMIN_TOKEN="$wrong_token" "$py" "$here/keyward_client.py" ci-python-smoke-denied >"$tmp/denied.out" 2>"$tmp/denied.err"
denied_status=$?
set -e
if ((denied_status != 1)); then
  fail "with a wrong token the client exited $denied_status, expected 1; stderr: $(cat "$tmp/denied.err")"
fi
if ! grep -Eq 'unauthenticated|invalid_credentials' "$tmp/denied.err"; then
  fail "with a wrong token the client's stderr names neither unauthenticated nor invalid_credentials: $(cat "$tmp/denied.err")"
fi
if [[ -s $tmp/denied.out ]]; then
  fail "with a wrong token the client printed to stdout: $(cat "$tmp/denied.out")"
fi
log "wrong token refused: $(head -n1 "$tmp/denied.err")"

# The server must still be running at the end.
kill -0 "$server_pid" 2>/dev/null || fail "the server is no longer running"
log "OK"
