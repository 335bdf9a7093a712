// The docs checks (ctest entry docs/check): docs/openapi.yaml passes a real OpenAPI validator
// (schemas, $refs, the 3.0 meta-schema), and every JSON example in docs/*.md parses — fenced
// ```json blocks and the inline `{…}` request bodies that follow a route (`POST /v1/x` `{…}`).
// Usage: scripts/node tests/docs/check_docs.mjs REPO_ROOT
import fs from 'node:fs';
import path from 'node:path';
import SwaggerParser from '@apidevtools/swagger-parser';

const root = process.argv[2];
if (!root) {
  console.error('usage: check_docs.mjs REPO_ROOT');
  process.exit(2);
}
let failures = 0;
const fail = (msg) => {
  console.error(`FAIL ${msg}`);
  failures++;
};

// A JSON example may elide with "…" inside strings only; anything else must be JSON as is.
function checkJson(file, line, text) {
  try {
    JSON.parse(text);
  } catch (e) {
    fail(`${file}:${line}: example is not JSON (${e.message}): ${text.slice(0, 120)}`);
  }
}

function checkMarkdown(file) {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  let fence = null;  // {lang, start, body}
  lines.forEach((l, i) => {
    const m = l.match(/^```(\w*)\s*$/);
    if (m && !fence) {
      fence = {lang: m[1], start: i + 1, body: []};
      return;
    }
    if (m && fence) {
      if (fence.lang === 'json') checkJson(file, fence.start, fence.body.join('\n'));
      fence = null;
      return;
    }
    if (fence) {
      fence.body.push(l);
      return;
    }
    // `METHOD /path…` `{…}`: a request body given inline after its route.
    for (const inl of l.matchAll(/`(?:GET|POST|PUT|PATCH|DELETE) \/[^`]*`\s+`(\{[^`]*\})`/g)) {
      checkJson(file, i + 1, inl[1]);
    }
  });
  if (fence) fail(`${file}:${fence.start}: unterminated code fence`);
}

const docs = path.join(root, 'docs');
let examples = 0;
for (const f of fs.readdirSync(docs).filter((f) => f.endsWith('.md')).sort()) {
  checkMarkdown(path.join(docs, f));
  examples++;
}

try {
  const api = await SwaggerParser.validate(path.join(docs, 'openapi.yaml'));
  const n = Object.keys(api.paths).length;
  console.log(`docs/openapi.yaml: valid OpenAPI ${api.openapi}, ${n} paths`);
} catch (e) {
  fail(`docs/openapi.yaml: ${e.message}`);
}
console.log(`${examples} markdown files checked for JSON examples`);
console.log(`${failures === 0 ? 1 : 0} passed, ${failures === 0 ? 0 : 1} failed`);
process.exit(failures === 0 ? 0 : 1);
