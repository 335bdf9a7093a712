#!/bin/sh
# The TypeScript SDK's suite as ctest runs it: types generated from docs/openapi.yaml, compiled,
# then node:test against a real server (test/server.mjs), all on the pinned Node (scripts/node).
set -eu
dir=$(cd "$(dirname "$0")/.." && pwd)
node="$dir/../../scripts/node"
if [ ! -d "$dir/node_modules/typescript" ]; then
  echo "sdk/typescript/node_modules is missing: run scripts/setup (make setup)" >&2
  exit 1
fi
cd "$dir"
"$node" node_modules/openapi-typescript/bin/cli.js ../../docs/openapi.yaml \
  --default-non-nullable=false -o src/schema.ts --silent
"$node" node_modules/typescript/bin/tsc -p .
exec "$node" --test --test-concurrency=1 --test-reporter=spec "test/*.test.mjs"
