// common.mjs — what lint.mjs and conformance.mjs share: loading the
// document (validated and dereferenced) and compiling its schemas.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

function need(name) {
  try {
    return require(name);
  } catch (e) {
    console.error(`openapi: cannot load '${name}' (${e.code || e.message}); ` +
      "run tools/setup, which installs tests/openapi's packages with npm ci");
    process.exit(2);
  }
}

const SwaggerParser = need("@apidevtools/swagger-parser");
const Ajv2020 = need("ajv/dist/2020").default;

export const METHODS = ["get", "put", "post", "delete", "patch", "head", "options"];

// The document: validated against the OpenAPI 3.1 schema, then every $ref
// resolved. Throws with the validator's message when it is not valid.
export async function loadDoc(file) {
  const raw = await SwaggerParser.parse(file);
  if (!/^3\.1\./.test(raw.openapi || "")) throw new Error(`openapi is '${raw.openapi}', expected 3.1.x`);
  await SwaggerParser.validate(structuredClone(raw));
  return SwaggerParser.dereference(structuredClone(raw));
}

// An Ajv for the document's schemas (JSON Schema 2020-12, OpenAPI's
// `example` and x- keywords allowed).
export function newAjv() {
  const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false, strictTypes: false });
  ajv.addKeyword("example");
  return ajv;
}

// Compiled validators, keyed by schema object identity (dereferenced
// schemas are shared objects).
export function validatorCache(ajv) {
  const cache = new Map();
  return (schema) => {
    let v = cache.get(schema);
    if (!v) {
      v = ajv.compile(schema);
      cache.set(schema, v);
    }
    return v;
  };
}

export function ajvErrors(v) {
  return (v.errors || []).map((e) => `${e.instancePath || "/"} ${e.message}` +
    (e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : "")).join("; ");
}

// The document's operations: [{path, method, op}].
export function operations(doc) {
  const out = [];
  for (const [path, item] of Object.entries(doc.paths || {}))
    for (const m of METHODS) if (item[m]) out.push({ path, method: m, op: item[m] });
  return out;
}
