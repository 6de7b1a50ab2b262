// lint.mjs — proto/openapi.yaml is a valid OpenAPI 3.1 document, its
// examples match their schemas, and it documents exactly the routes of the
// route table (src/net/http_route.c).
//
//   node tests/openapi/lint.mjs proto/openapi.yaml src/net/http_route.c
//
// Checks (each failure is printed; exit 1 when any):
//   1. OpenAPI 3.1 schema validation and $ref resolution (swagger-parser);
//   2. every schema compiles as JSON Schema 2020-12 (ajv, strict);
//   3. every example (media types, parameters) validates against its schema;
//   4. every operation has an operationId, x-rapport-roles and responses
//      with a described content;
//   5. the (method, path) pairs of the route table are exactly the
//      documented GET, PUT, PATCH, POST and DELETE operations (path
//      parameters compared by position, not by name). HEAD and OPTIONS are
//      not table rows: the server answers HEAD on every GET row and
//      OPTIONS on every path, so the document must have HEAD exactly on
//      the paths with GET — with the GET's parameters, roles and statuses,
//      the GET's response headers, and no body — and OPTIONS (no token,
//      204 with Allow) on every path.
import fs from "node:fs";
import { ajvErrors, loadDoc, newAjv, operations, validatorCache } from "./common.mjs";

const [docFile, routeFile] = process.argv.slice(2);
if (!docFile || !routeFile) {
  console.error("usage: lint.mjs OPENAPI.yaml http_route.c");
  process.exit(2);
}

const problems = [];
const fail = (m) => problems.push(m);

let doc;
try {
  doc = await loadDoc(docFile);
} catch (e) {
  console.error(`openapi_lint: ${docFile} is not a valid OpenAPI 3.1 document:\n${e.message}`);
  process.exit(1);
}

const ajv = newAjv();
const compile = validatorCache(ajv);

function checkExample(where, schema, example) {
  if (example === undefined || schema === undefined) return;
  let v;
  try {
    v = compile(schema);
  } catch (e) {
    fail(`${where}: schema does not compile: ${e.message}`);
    return;
  }
  let value = example;
  if (typeof example === "string" && schema.type !== "string" && where.includes("x-ndjson")) {
    // NDJSON: each non-blank line is one instance of the schema
    for (const [i, line] of example.split("\n").entries()) {
      if (!line.trim()) continue;
      let o;
      try {
        o = JSON.parse(line);
      } catch (e) {
        fail(`${where}: example line ${i + 1} is not JSON: ${e.message}`);
        continue;
      }
      if (!v(o)) fail(`${where}: example line ${i + 1}: ${ajvErrors(v)}`);
    }
    return;
  }
  if (!v(value)) fail(`${where}: example does not match its schema: ${ajvErrors(v)}`);
}

function checkContent(where, content) {
  for (const [mt, media] of Object.entries(content || {})) {
    if (!media.schema) fail(`${where} ${mt}: no schema`);
    checkExample(`${where} ${mt}`, media.schema, media.example);
    for (const [name, ex] of Object.entries(media.examples || {}))
      checkExample(`${where} ${mt} examples.${name}`, media.schema, ex.value);
  }
}

// 2. every component schema compiles
for (const [name, schema] of Object.entries(doc.components?.schemas || {})) {
  try {
    compile(schema);
  } catch (e) {
    fail(`components.schemas.${name}: does not compile: ${e.message}`);
  }
}

// 3 and 4: operations
for (const { path, method, op } of operations(doc)) {
  const where = `${method.toUpperCase()} ${path}`;
  if (!op.operationId) fail(`${where}: no operationId`);
  if (!op["x-rapport-roles"]) fail(`${where}: no x-rapport-roles`);
  if (!op.responses || !Object.keys(op.responses).length) fail(`${where}: no responses`);
  if (op.responses?.default) fail(`${where}: a 'default' response would hide undocumented statuses`);
  for (const p of [...(doc.paths[path].parameters || []), ...(op.parameters || [])])
    checkExample(`${where} parameter ${p.name}`, p.schema, p.example);
  if (op.requestBody) checkContent(`${where} requestBody`, op.requestBody.content);
  for (const [status, r] of Object.entries(op.responses || {})) {
    if (!r.description) fail(`${where} ${status}: no description`);
    checkContent(`${where} ${status}`, r.content);
  }
}
for (const [name, r] of Object.entries(doc.components?.responses || {}))
  checkContent(`components.responses.${name}`, r.content);

// 5. the route table
const src = fs.readFileSync(routeFile, "utf8");
const table = [...src.matchAll(/\{HTTP_M_([A-Z]+),\s*"([^"]+)"/g)].map((m) => ({
  method: m[1].toLowerCase(),
  path: m[2],
}));
if (table.length < 10) fail(`${routeFile}: found only ${table.length} route rows (has the table's shape changed?)`);
const norm = (p) => p.replace(/\{[^}]+\}/g, "{}");
const key = (m, p) => `${m.toUpperCase()} ${norm(p)}`;
const inTable = new Set(table.map((r) => key(r.method, r.path)));
const implicit = new Set(["head", "options"]);
const documented = new Set(operations(doc).filter((o) => !implicit.has(o.method)).map((o) => key(o.method, o.path)));
for (const k of inTable) if (!documented.has(k)) fail(`route table has ${k}, the document does not`);
for (const k of documented) if (!inTable.has(k)) fail(`the document has ${k}, the route table does not`);

// HEAD: exactly on the paths with GET, the GET without a body
const same = (a, b) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
for (const [p, item] of Object.entries(doc.paths)) {
  const get = item.get, head = item.head, opt = item.options;
  if (get && !head) fail(`${p}: GET is documented, HEAD (served on every GET route) is not`);
  if (head && !get) fail(`${p}: HEAD is documented without GET (the server answers it 405)`);
  if (get && head) {
    const gs = Object.keys(get.responses || {}).sort(), hs = Object.keys(head.responses || {}).sort();
    if (!same(gs, hs)) fail(`HEAD ${p}: statuses ${hs.join(",")} differ from the GET's ${gs.join(",")}`);
    if (!same(get.parameters, head.parameters)) fail(`HEAD ${p}: parameters differ from the GET's`);
    if (!same(get.security, head.security)) fail(`HEAD ${p}: security differs from the GET's`);
    if (!same(get["x-rapport-roles"], head["x-rapport-roles"])) fail(`HEAD ${p}: x-rapport-roles differ from the GET's`);
    if (get["x-rapport-op"] !== head["x-rapport-op"]) fail(`HEAD ${p}: x-rapport-op differs from the GET's`);
    for (const [st, r] of Object.entries(head.responses || {})) {
      if (r.content) fail(`HEAD ${p} ${st}: a HEAD response has no body (no content)`);
      const gh = Object.keys(get.responses?.[st]?.headers || {}).sort();
      const hh = Object.keys(r.headers || {}).sort();
      if (!same(gh, hh)) fail(`HEAD ${p} ${st}: headers ${hh.join(",")} differ from the GET's ${gh.join(",")}`);
    }
  }
  // OPTIONS: every path, no token, 204 with Allow and no body
  if (!opt) {
    fail(`${p}: OPTIONS (served on every path) is not documented`);
    continue;
  }
  if (!same(opt.security, [])) fail(`OPTIONS ${p}: needs no token (security: [])`);
  const r204 = opt.responses?.["204"];
  if (!r204) fail(`OPTIONS ${p}: no 204`);
  else {
    if (r204.content) fail(`OPTIONS ${p} 204: no body`);
    if (!r204.headers?.Allow?.required) fail(`OPTIONS ${p} 204: no required Allow header`);
  }
}

if (problems.length) {
  for (const p of problems) console.error(`openapi_lint: ${p}`);
  console.error(`openapi_lint: FAIL (${problems.length} problems)`);
  process.exit(1);
}
const n = operations(doc).length;
console.log(`openapi_lint: ok — valid OpenAPI ${doc.openapi}, ${n} operations, ${inTable.size} routes match the route table`);
