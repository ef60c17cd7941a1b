#!/usr/bin/env bash
# The OpenAPI document against the real service: start `eerp dev` (its own PostgreSQL,
# the demo tenant with every built-in module), validate the demo tenant's document with
# openapi-spec-validator, then let schemathesis send it generated requests, valid and
# invalid, to every operation: no answer may be a 5xx, and every answer must match the
# document (status, content type, body schema).
#
# Needs python3 with venv; the tools (pinned) are installed once per version into
# ${EERP_TOOL_CACHE:-~/.cache/eerp}/openapi-venv-<versions>.
# EERP_SCHEMATHESIS_EXAMPLES (default 20) and EERP_SCHEMATHESIS_SEED (default 1) tune it;
# EERP_BIN names an `eerp` binary already built (CI passes the one `cargo test` built).
set -euo pipefail
cd "$(dirname "$0")/../.."

tools="schemathesis==4.32.5 openapi-spec-validator==0.9.0"
venv=${EERP_TOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/eerp}/openapi-venv-$(echo "$tools" | sha256sum | cut -c1-12)
if [ ! -x "$venv/bin/schemathesis" ] || [ ! -x "$venv/bin/openapi-spec-validator" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    # shellcheck disable=SC2086 # one argument per pinned tool
    "$venv/bin/pip" install --quiet --disable-pip-version-check $tools
fi

eerp=${EERP_BIN:-}
if [ -z "$eerp" ]; then
    cargo build --quiet --bin eerp
    eerp=target/debug/eerp
fi
state=$(mktemp -d)
# eerp dev runs initdb as `postgres` when it runs as root: that user must reach the folder.
chmod 755 "$state"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log="$state/dev.log"
"$eerp" dev --port "$port" --state-dir "$state/eerp" >"$log" 2>&1 &
dev=$!
cleanup() {
    kill -INT "$dev" 2>/dev/null && wait "$dev" 2>/dev/null || true
    rm -rf "$state"
}
trap cleanup EXIT

for _ in $(seq 1 120); do
    grep -q '^export TOKEN=' "$log" && break
    kill -0 "$dev" 2>/dev/null || { cat "$log"; echo "eerp dev stopped" >&2; exit 1; }
    sleep 1
done
token=$(sed -n 's/^export TOKEN=//p' "$log")
[ -n "$token" ] || { cat "$log"; echo "eerp dev printed no token" >&2; exit 1; }
url="http://127.0.0.1:$port"

# The default 200 requests/s would answer most generated requests with 429.
"$eerp" limits demo requests_per_second=10000 burst=10000 \
    --url "$url" --token "$(cat "$state/eerp/operator-token")" >/dev/null

curl -sf "$url/api/v1/openapi.json" -H "authorization: Bearer $token" -o "$state/openapi.json"
"$venv/bin/openapi-spec-validator" "$state/openapi.json"
python3 - "$state/openapi.json" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
modules = sorted(tag["name"] for tag in doc["tags"])
assert modules == ["accounting", "crm", "hr", "inventory"], modules
print(f"{len(doc['paths'])} paths of {', '.join(modules)}")
EOF

# From the state folder, so schemathesis's cache (.schemathesis/) goes with it.
venv=$(realpath "$venv")
cd "$state"
"$venv/bin/schemathesis" run openapi.json --url "$url" \
    -H "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "${EERP_SCHEMATHESIS_EXAMPLES:-20}" --seed "${EERP_SCHEMATHESIS_SEED:-1}" \
    --workers 2 --no-color
