#!/usr/bin/env bash
# Builds the AssemblyScript guest "asnotes" to build/asnotes.wasm and prints its path.
# Needs only node (>= 20, required by assemblyscript 0.28) and npm with registry access.
set -euo pipefail
cd "$(dirname "$0")"
# `npm ci` installs exactly package-lock.json; skip it when the pinned compiler is there.
want=$(node -p 'require("./package.json").devDependencies.assemblyscript')
have=$(node -p 'try { require("./node_modules/assemblyscript/package.json").version } catch { "" }')
if [ "$want" != "$have" ]; then
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
mkdir -p build
node_modules/.bin/asc assembly/index.ts --target release >&2
echo "$PWD/build/asnotes.wasm"
