// conformance.mjs — the running rapportd answers as proto/openapi.yaml says.
//
//   node tests/openapi/conformance.mjs build/rapportd proto/openapi.yaml
//
// Starts the real server (a temp data dir, free 127.0.0.1 ports, one token
// per role, cors_origins set to one origin), sends requests for every
// documented route — successes and errors: 304, 400, 401, 403, 404, 405,
// 409, 412, 413, 501 — and holds every response to the document:
//   - the status must be one the operation documents (no `default`), or,
//     for a path the document lacks, 404; for a method the path lacks, 405
//     with Allow = the path's documented methods but HEAD and OPTIONS;
//   - the Content-Type must be one of that response's media types, and the
//     body must validate against its schema (JSON; NDJSON line by line;
//     application/yaml must be the document's own bytes); a HEAD answer
//     has no body and the Content-Type of the GET's response;
//   - the response's required headers must be there and match; CORS
//     headers, when present, must match components.headers and come only
//     for the allowed origin; OPTIONS's Allow must list the path's
//     documented methods;
//   - every GET is repeated as HEAD, which must answer the same status and
//     headers without a body;
//   - each case also states the status it expects (a wrong but documented
//     status still fails).
// At the end every operation must have been seen answering 2xx and (when
// it needs a token) at least one error.
import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { METHODS, ajvErrors, loadDoc, newAjv, operations, validatorCache } from "./common.mjs";

const [rapportd, docFile] = process.argv.slice(2);
if (!rapportd || !docFile) {
  console.error("usage: conformance.mjs RAPPORTD OPENAPI.yaml");
  process.exit(2);
}
const doc = await loadDoc(docFile);
const docBytes = fs.readFileSync(docFile);
const compile = validatorCache(newAjv());
const METHOD_SET = new Set(METHODS);

const TOKENS = {
  route: "route-token-0123456789",
  agent: "agent-token-0123456789",
  ingest: "ingest-token-0123456789",
  admin: "admin-token-0123456789",
};
const ROLES = Object.keys(TOKENS);
const ORIGIN = "https://crm.example.com"; // the test server's cors_origins
const MAX_BODY = 65536; // its max_request_bytes

// --- the server ---------------------------------------------------------------

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const dir = fs.mkdtempSync(path.join(process.env.TMPDIR || os.tmpdir(), "rp-openapi-"));
let server = null;
let port = 0;
let log = "";

async function start() {
  for (let attempt = 0; attempt < 3; attempt++) {
    const rpc = await freePort();
    port = await freePort();
    if (rpc === port) continue;
    const args = ["--data", path.join(dir, "data"), "--listen", `127.0.0.1:${rpc}`,
      "--http", `127.0.0.1:${port}`, "--set", "threads=2", "--set", "map_initial=8388608",
      "--set", "max_request_bytes=65536", "--set", `cors_origins=${ORIGIN}`];
    for (const [role, secret] of Object.entries(TOKENS)) args.push("--set", `token=${role}:${secret}`);
    log = "";
    server = spawn(rapportd, args, { stdio: ["ignore", "ignore", "pipe"] });
    server.stderr.on("data", (d) => { log += d; });
    let exited = false;
    server.once("exit", () => { exited = true; });
    for (let i = 0; i < 100 && !exited; i++) {
      try {
        const r = await send("GET", "/healthz", {});
        if (r.status === 200) return;
      } catch { /* not up yet */ }
      await new Promise((r) => setTimeout(r, 100));
    }
    if (!exited) server.kill("SIGKILL");
    if (!/in use/i.test(log)) break;
  }
  throw new Error(`rapportd did not start:\n${log}`);
}

function stop() {
  if (server && server.exitCode === null) server.kill("SIGTERM");
  fs.rmSync(dir, { recursive: true, force: true });
}
process.on("exit", () => {
  if (server && server.exitCode === null) server.kill("SIGKILL");
});

// One request; the path is sent as written (no normalization).
function send(method, rawPath, { role, token, headers = {}, body } = {}) {
  const h = { ...headers };
  if (role) h.Authorization = `Bearer ${TOKENS[role]}`;
  if (token !== undefined) h.Authorization = token;
  const data = body === undefined ? undefined : Buffer.from(typeof body === "string" ? body : JSON.stringify(body));
  if (data) h["Content-Length"] = data.length;
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method, path: rawPath, headers: h, agent: false }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.setTimeout(20000, () => req.destroy(new Error("timed out")));
    if (data) req.write(data);
    req.end();
  });
}

// --- matching a response to the document -----------------------------------------

const templates = Object.keys(doc.paths).map((t) => {
  const segs = t.split("/").slice(1);
  return { t, segs, literal: segs.filter((s) => !s.startsWith("{")).length };
}).sort((a, b) => b.literal - a.literal);

function findPath(rawPath) {
  const p = rawPath.split("?")[0].replace(/\/$/, "") || "/";
  const segs = p.split("/").slice(1);
  for (const tpl of templates) {
    if (tpl.segs.length !== segs.length) continue;
    if (tpl.segs.every((s, i) => s.startsWith("{") || s === decodeURIComponent(segs[i]))) return tpl.t;
  }
  return null;
}

const seen = new Map(); // "METHOD path" -> Set of statuses
const failures = [];
let checks = 0;

function validateHeaders(where, resp, res) {
  for (const [name, hdr] of Object.entries(resp.headers || {})) {
    const v = res.headers[name.toLowerCase()];
    if (v === undefined) {
      if (hdr.required) return `${where}: header ${name} missing`;
      continue;
    }
    if (hdr.schema) {
      const val = compile(hdr.schema);
      if (!val(v)) return `${where}: header ${name}: '${v}' ${ajvErrors(val)}`;
    }
  }
  return null;
}

function validateBody(where, resp, res) {
  const ct = res.headers["content-type"];
  const content = resp.content || {};
  if (!Object.keys(content).length) return res.body.length ? `${where}: a body where none is documented` : null;
  const media = content[ct];
  if (!media) return `${where}: Content-Type '${ct}' not documented (documented: ${Object.keys(content).join(", ")})`;
  const text = res.body.toString("utf8");
  const v = compile(media.schema);
  if (ct === "application/yaml") {
    if (!res.body.equals(docBytes)) return `${where}: the served document differs from ${docFile}`;
    return v(text) ? null : `${where}: ${ajvErrors(v)}`;
  }
  if (ct.startsWith("text/")) return v(text) ? null : `${where}: ${ajvErrors(v)}`;
  if (ct === "application/x-ndjson") {
    const lines = text.split("\n");
    if (lines.pop() !== "") return `${where}: NDJSON does not end in a newline`;
    for (const [i, l] of lines.entries()) {
      let o;
      try { o = JSON.parse(l); } catch (e) { return `${where}: line ${i + 1} is not JSON: ${e.message}`; }
      if (!v(o)) return `${where}: line ${i + 1} ${l.slice(0, 200)}: ${ajvErrors(v)}`;
    }
    return null;
  }
  let o;
  try { o = JSON.parse(text); } catch (e) { return `${where}: body is not JSON: ${e.message}: ${text.slice(0, 200)}`; }
  if (!v(o)) return `${where}: body ${text.slice(0, 300)}: ${ajvErrors(v)}`;
  return null;
}

// A HEAD answer: no body, and the Content-Type the GET's response (full,
// with its content) documents, or none when it has no body.
function validateHead(where, full, res) {
  if (res.body.length) return `${where}: a HEAD answer with a body`;
  const ct = res.headers["content-type"];
  const types = Object.keys(full?.content || {});
  if (types.length ? !types.includes(ct) : ct !== undefined)
    return `${where}: Content-Type '${ct}', the GET's response has ${types.join(", ") || "none"}`;
  return null;
}

const sortedList = (v) => (v || "").split(/,\s*/).filter(Boolean).sort().join(", ");

// CORS headers: each one present must match components.headers, and only
// a request from the allowed origin gets Access-Control-*.
function validateCors(where, res, reqHeaders = {}) {
  for (const [name, hdr] of Object.entries(doc.components.headers)) {
    if (name !== "Vary" && !name.startsWith("Access-Control-")) continue;
    const v = res.headers[name.toLowerCase()];
    if (v === undefined) continue;
    if (name !== "Vary" && reqHeaders.Origin !== ORIGIN)
      return `${where}: ${name} for ${reqHeaders.Origin ? `origin '${reqHeaders.Origin}'` : "a request without Origin"}`;
    const val = compile(hdr.schema);
    if (!val(v)) return `${where}: header ${name}: '${v}' ${ajvErrors(val)}`;
  }
  const acam = res.headers["access-control-allow-methods"];
  if (acam !== undefined && acam !== res.headers.allow) return `${where}: Access-Control-Allow-Methods '${acam}' is not Allow '${res.headers.allow}'`;
  return null;
}

// Hold res (the answer to method rawPath) to the document. Returns a
// problem, or null.
function conform(method, rawPath, res, reqHeaders = {}) {
  const m = method.toLowerCase();
  const tpl = findPath(rawPath);
  const where = `${method} ${rawPath} -> ${res.status}`;
  const cors = validateCors(where, res, reqHeaders);
  if (cors) return cors;
  const body = (r) => (m === "head" ? validateHead(where, r, res) : validateBody(where, r, res));
  if (tpl === null) {
    if (res.status !== 404) return `${where}: a path the document lacks must be 404`;
    return body(doc.components.responses.NotFound) || validateHeaders(where, doc.components.responses.NotFound, res);
  }
  const item = doc.paths[tpl];
  const op = item[m];
  if (!op) {
    if (res.status !== 405) return `${where}: ${method} is not documented on ${tpl}: expected 405`;
    // RFC 9110: a 405's Allow lists every method the path supports (HEAD and OPTIONS too)
    const want = Object.keys(item).filter((x) => METHOD_SET.has(x)).map((x) => x.toUpperCase()).sort().join(", ");
    if (sortedList(res.headers.allow) !== want) return `${where}: Allow '${res.headers.allow}', the document has ${want}`;
    const r = doc.components.responses.MethodNotAllowed;
    return body(r) || validateHeaders(where, r, res);
  }
  const key = `${m.toUpperCase()} ${tpl}`;
  if (!seen.has(key)) seen.set(key, new Set());
  seen.get(key).add(res.status);
  const resp = op.responses[String(res.status)];
  if (!resp) return `${where}: status ${res.status} not documented for ${key} (documented: ${Object.keys(op.responses).join(", ")})`;
  if (m === "options" && res.status === 204) {
    const want = Object.keys(item).filter((x) => METHOD_SET.has(x)).map((x) => x.toUpperCase()).sort().join(", ");
    if (sortedList(res.headers.allow) !== want) return `${where}: Allow '${res.headers.allow}', the document has ${want}`;
  }
  if (m === "head") return validateHead(where, item.get.responses[String(res.status)], res) || validateHeaders(where, resp, res);
  return validateBody(where, resp, res) || validateHeaders(where, resp, res);
}

// The headers a HEAD must repeat from its GET.
const MIRRORED = ["content-type", "etag", "www-authenticate", "allow", "vary", "access-control-allow-origin"];

// One case: send, hold to the document, and compare with the expected
// status (a number or a list).
async function check(expect, method, rawPath, opts = {}) {
  checks++;
  let res;
  try {
    res = await send(method, rawPath, opts);
  } catch (e) {
    failures.push(`${method} ${rawPath}: ${e.message}`);
    return null;
  }
  const problem = conform(method, rawPath, res, opts.headers);
  if (problem) failures.push(problem);
  const ok = Array.isArray(expect) ? expect.includes(res.status) : res.status === expect;
  if (!ok) failures.push(`${method} ${rawPath}: expected ${expect}, got ${res.status} ${res.body.toString().slice(0, 200)}`);
  // every GET again as HEAD: the same status and headers, no body
  if (method === "GET" && !opts.noHead) {
    const h = await check(res.status, "HEAD", rawPath, { ...opts, noHead: true });
    if (h) {
      for (const name of MIRRORED)
        if (h.headers[name] !== res.headers[name])
          failures.push(`HEAD ${rawPath}: ${name} '${h.headers[name]}', the GET's '${res.headers[name]}'`);
      // a streamed GET (export) has no Content-Length; its HEAD says 0
      if (res.headers["content-length"] !== undefined && h.headers["content-length"] !== res.headers["content-length"])
        failures.push(`HEAD ${rawPath}: Content-Length '${h.headers["content-length"]}', the GET's '${res.headers["content-length"]}'`);
    }
  }
  return res;
}

// The headers of res must be (value), be there (true) or be absent (undefined).
function expectHeaders(label, res, want) {
  if (!res) return;
  for (const [name, v] of Object.entries(want)) {
    const got = res.headers[name.toLowerCase()];
    if (v === undefined ? got !== undefined : v === true ? got === undefined : got !== v)
      failures.push(`${label}: header ${name} is '${got}', expected ${v === undefined ? "none" : v === true ? "one" : `'${v}'`}`);
  }
}

const json = (res) => JSON.parse(res.body.toString());

// --- the cases ----------------------------------------------------------------------

await start();
try {
  // service routes
  await check(200, "GET", "/healthz");
  await check(400, "GET", "/healthz?x=%zz");
  await check(200, "GET", "/openapi.yaml");
  await check(200, "GET", "/openapi.yaml", { token: "Bearer nonsense" });
  await check(200, "GET", "/metrics", { role: "route" });
  await check(401, "GET", "/metrics");
  await check(401, "GET", "/metrics", { token: "Bearer wrong-token-0123456789" });

  // writes: set the scene
  const c1 = "c-1001", c2 = "c-2002";
  await check(200, "PUT", `/v1/customers/${c1}`, {
    role: "ingest", headers: { "If-None-Match": "*" },
    body: { name: "Ada Lovelace", preferred_name: "Ada", language: "es-MX", tier: "platinum",
      customer_since: 1500000000, flags: ["vip"], preferences: { tone: "warm" },
      phones: ["+1 (415) 555-1212"], emails: ["Ada@Example.com"], accounts: ["ACC-77"] },
  });
  await check(200, "PUT", `/v1/customers/${c2}`, { role: "admin", body: { name: "A. Lovelace", phones: ["415.555.1212"] } });
  await check(200, "PUT", "/v1/customers/dup-1", { role: "ingest", body: { name: "Dup" } });
  await check(400, "PUT", `/v1/customers/${c1}`, { role: "ingest", body: { nmae: "x" } });
  await check(400, "PUT", `/v1/customers/${c1}`, { role: "ingest", body: "not json" });
  await check(400, "PUT", `/v1/customers/${c1}`, { role: "ingest", body: [1, 2] });
  await check(400, "PUT", `/v1/customers/${c1}?x=1`, { role: "ingest", body: { name: "x" } });
  await check(400, "PUT", `/v1/customers/${c1}`, { role: "ingest", headers: { "If-Match": "\"1\"", "If-None-Match": "*" }, body: { name: "x" } });
  await check(400, "PUT", `/v1/customers/${c1}`, { role: "ingest", body: { id: "other", name: "x" } });
  let deep = 0;
  for (let i = 0; i < 40; i++) deep = { a: deep };
  await check(413, "PUT", `/v1/customers/${c1}`, { role: "ingest", body: { preferences: deep } });
  await check(412, "PUT", `/v1/customers/${c1}`, { role: "ingest", headers: { "If-None-Match": "*" }, body: { name: "x" } });
  await check(412, "PUT", `/v1/customers/${c1}`, { role: "ingest", headers: { "If-Match": "\"7\"" }, body: { name: "Ada Lovelace" } });
  await check(412, "PUT", `/v1/customers/${c1}`, { role: "ingest", headers: { "If-Match": "\"v7\"" }, body: { name: "Ada Lovelace" } });
  await check(200, "PUT", "/v1/customers/dup-1", { role: "ingest", headers: { "Idempotency-Key": "put-dup-1" }, body: { name: "Dup" } });
  await check(409, "PUT", "/v1/customers/dup-1", { role: "ingest", headers: { "Idempotency-Key": "put-dup-1" }, body: { name: "Dup 2" } });
  await check(401, "PUT", `/v1/customers/${c1}`, { body: { name: "x" } });
  await check(403, "PUT", `/v1/customers/${c1}`, { role: "agent", body: { name: "x" } });

  await check(200, "PATCH", `/v1/customers/${c1}`, { role: "ingest", headers: { "If-Match": "\"1\"" }, body: { timezone: "Europe/London", rapport_notes: ["has a cat"] } });
  await check(412, "PATCH", `/v1/customers/${c1}`, { role: "ingest", headers: { "If-Match": "1" }, body: { tier: "gold" } });
  await check(412, "PATCH", `/v1/customers/${c1}`, { role: "ingest", headers: { "If-None-Match": "*" }, body: { tier: "gold" } });
  await check(400, "PATCH", `/v1/customers/${c1}`, { role: "ingest", body: { id: "x" } });
  await check(400, "PATCH", `/v1/customers/${c1}`, { role: "ingest", headers: { "If-Match": "soon" }, body: { tier: "gold" } });
  await check(404, "PATCH", "/v1/customers/nobody", { role: "ingest", body: { tier: "gold" } });
  await check(403, "PATCH", `/v1/customers/${c1}`, { role: "route", body: { tier: "gold" } });

  const now = Math.floor(Date.now() / 1000);
  await check(200, "POST", `/v1/customers/${c1}/events`, { role: "ingest",
    body: { ts: now - 7200, channel: "phone", kind: "contact", topic: "delivery", outcome: "unresolved",
      summary: "Parcel late, promised a callback", sentiment: -0.6, agent: "a-17", issue_id: "INC-9", event_id: "act-1" } });
  await check(200, "POST", `/v1/customers/${c1}/events`, { role: "ingest", headers: { "Idempotency-Key": "crm-act-2" },
    body: { ts: now - 3600, channel: "web", kind: "outage", summary: "Fibre outage in the area" } });
  await check(200, "POST", `/v1/customers/${c1}/events`, { role: "ingest", headers: { "Idempotency-Key": "crm-act-2" },
    body: { ts: now - 3600, channel: "web", kind: "outage", summary: "Fibre outage in the area" } });
  await check(409, "POST", `/v1/customers/${c1}/events`, { role: "ingest", headers: { "Idempotency-Key": "crm-act-2" },
    body: { ts: now - 3500, channel: "web", kind: "outage" } });
  const dupe = await check(200, "POST", `/v1/customers/${c1}/events`, { role: "ingest",
    body: { ts: now, channel: "phone", kind: "contact", event_id: "act-1" } });
  if (dupe && json(dupe).duplicate !== true) failures.push("an event_id appended twice was not answered duplicate: true");
  await check(200, "POST", "/v1/customers/dup-1/events", { role: "ingest", body: { ts: now - 60, channel: "chat", kind: "contact", outcome: "resolved" } });
  await check(400, "POST", `/v1/customers/${c1}/events`, { role: "ingest", body: { ts: now, channel: "pigeon", kind: "contact" } });
  await check(400, "POST", `/v1/customers/${c1}/events`, { role: "ingest", body: { customer_id: c2, ts: now, channel: "web", kind: "login" } });
  await check(400, "POST", `/v1/customers/${c1}/events`, { role: "ingest", body: { ts: now, channel: "web", kind: "login", seq: 3 } });
  await check(404, "POST", "/v1/customers/nobody/events", { role: "ingest", body: { ts: now, channel: "web", kind: "login" } });
  await check(413, "POST", `/v1/customers/${c1}/events`, { role: "ingest", body: { ts: now, channel: "web", kind: "login", summary: deep } });
  await check(403, "POST", `/v1/customers/${c1}/events`, { role: "agent", body: { ts: now, channel: "web", kind: "login" } });

  await check(200, "PUT", `/v1/customers/${c1}/issues/INC-9`, { role: "ingest",
    body: { topic: "delivery", status: "hold", severity: "P1", summary: "Parcel 4411 late", follow_up_due: now - 600, contacts: 2 } });
  await check(200, "PUT", `/v1/customers/${c1}/issues/INC-10`, { role: "admin", body: { topic: "billing", status: 6, severity: 3 } });
  await check(400, "PUT", `/v1/customers/${c1}/issues/INC-9`, { role: "ingest", body: { severity: "dire" } });
  await check(400, "PUT", `/v1/customers/${c1}/issues/INC-9`, { role: "ingest", body: { issue_id: "INC-1" } });
  await check(404, "PUT", "/v1/customers/nobody/issues/INC-1", { role: "ingest", body: { topic: "x" } });
  await check(403, "PUT", `/v1/customers/${c1}/issues/INC-9`, { role: "agent", body: { topic: "x" } });
  await check(401, "PUT", `/v1/customers/${c1}/issues/INC-9`, { token: "Basic abc", body: { topic: "x" } });

  // reads
  await check(200, "GET", `/v1/customers/${c1}`, { role: "agent" });
  await check(200, "GET", `/v1/customers/${c1}/`, { role: "admin" });
  await check(404, "GET", "/v1/customers/nobody", { role: "agent" });
  await check(400, "GET", "/v1/customers/bad%zz", { role: "agent" });
  await check(400, "GET", `/v1/customers/${c1}?x=1`, { role: "agent" });
  await check(403, "GET", `/v1/customers/${c1}`, { role: "ingest" });
  await check(401, "GET", `/v1/customers/${c1}`);

  await check(200, "GET", "/v1/context?phone=%2B1%20415%20555%201212", { role: "agent" });
  await check(200, "GET", `/v1/context?id=${c1}&at=${now}`, { role: "admin" });
  await check(200, "GET", "/v1/context?email=ADA%40example.com", { role: "agent" });
  await check(200, "GET", "/v1/context?account=ACC-77", { role: "agent" });
  await check(200, "GET", "/v1/context?phone=+442079460958", { role: "agent" });
  await check(400, "GET", "/v1/context", { role: "agent" });
  await check(400, "GET", "/v1/context?phone=1&email=a%40b.c", { role: "agent" });
  await check(400, "GET", `/v1/context?id=${c1}&at=soon`, { role: "agent" });

  // the agent's page, its stylesheet and its signed links
  await check(200, "GET", `/card?id=${c1}`, { role: "agent" });
  await check(200, "GET", "/card?phone=%2B1%20415%20555%201212", { role: "admin" });
  await check(200, "GET", "/card?phone=%2B1%20212%20555%200000", { role: "agent" });
  await check(400, "GET", "/card", { role: "agent" });
  await check(400, "GET", `/card?id=${c1}&x=1`, { role: "agent" });
  await check(401, "GET", `/card?id=${c1}`);
  await check(403, "GET", `/card?id=${c1}`, { role: "ingest" });
  await check(404, "GET", "/card?id=nobody-here", { role: "agent" });
  await check(200, "GET", "/card/card.css");
  const link = await check(200, "POST", `/v1/card-links?id=${c1}&ttl=60`, { role: "ingest" });
  if (link) await check(200, "GET", json(link).url);
  await check(403, "GET", `/card?id=${c1}&exp=${now + 60}&sig=00112233445566778899aabbccddeeff`);
  await check(400, "POST", "/v1/card-links?ttl=60", { role: "admin" });
  await check(401, "POST", `/v1/card-links?id=${c1}`);
  await check(403, "POST", `/v1/card-links?id=${c1}`, { role: "agent" });
  await check(400, "GET", "/v1/context?phone=anonymous", { role: "agent" });
  await check(404, "GET", "/v1/context?id=nobody", { role: "agent" });
  await check(403, "GET", `/v1/context?id=${c1}`, { role: "route" });
  await check(401, "GET", `/v1/context?id=${c1}`);

  await check(200, "GET", "/v1/route?phone=+14155551212", { role: "route" });
  await check(200, "GET", "/v1/route?phone=4155551212", { role: "agent" });
  await check(200, "GET", "/v1/route?phone=anonymous", { role: "route" });
  await check(200, "GET", `/v1/route?phone=%2B442079460958&at=${now}`, { role: "admin" });
  await check(400, "GET", "/v1/route", { role: "route" });
  await check(400, "GET", "/v1/route?phone=1&id=x", { role: "route" });
  await check(403, "GET", "/v1/route?phone=1", { role: "ingest" });
  await check(401, "GET", "/v1/route?phone=1");

  await check(200, "GET", "/v1/lookup?phone=415.555.1212", { role: "agent" });
  await check(200, "GET", "/v1/lookup?email=nobody%40example.com", { role: "agent" });
  await check(200, "GET", "/v1/lookup?account=ACC-77", { role: "admin" });
  await check(400, "GET", "/v1/lookup?id=x", { role: "agent" });
  await check(403, "GET", "/v1/lookup?phone=1", { role: "route" });

  await check(200, "GET", `/v1/customers/${c1}/events`, { role: "agent" });
  const page = await check(200, "GET", `/v1/customers/${c1}/events?limit=1`, { role: "agent" });
  if (page && json(page).next) await check(200, "GET", `/v1/customers/${c1}/events?limit=1&before=${json(page).next}`, { role: "agent" });
  await check(400, "GET", `/v1/customers/${c1}/events?limit=0`, { role: "agent" });
  await check(400, "GET", `/v1/customers/${c1}/events?limit=x`, { role: "agent" });
  await check(400, "GET", `/v1/customers/${c1}/events?before=yesterday`, { role: "agent" });
  await check(404, "GET", "/v1/customers/nobody/events", { role: "agent" });
  await check(403, "GET", `/v1/customers/${c1}/events`, { role: "ingest" });

  await check(200, "GET", `/v1/customers/${c1}/issues`, { role: "agent" });
  await check(404, "GET", "/v1/customers/nobody/issues", { role: "agent" });
  await check(400, "GET", `/v1/customers/${c1}/issues?all=1`, { role: "agent" });
  await check(403, "GET", `/v1/customers/${c1}/issues`, { role: "route" });

  // ETag, 304 and If-Match with the tag; `_` is ignored
  const got = await check(200, "GET", `/v1/customers/${c1}`, { role: "agent" });
  const etag = got?.headers.etag;
  if (got && etag !== `"v${json(got).version}"`) failures.push(`GET /v1/customers/${c1}: ETag '${etag}' is not "v<version>" of version ${json(got).version}`);
  await check(304, "GET", `/v1/customers/${c1}`, { role: "agent", headers: { "If-None-Match": etag } });
  await check(304, "GET", `/v1/customers/${c1}`, { role: "agent", headers: { "If-None-Match": "*" } });
  await check(200, "GET", `/v1/customers/${c1}`, { role: "agent", headers: { "If-None-Match": "\"v999\"" } });
  await check(200, "GET", `/v1/customers/${c1}?_=1732350000123`, { role: "agent" });
  await check(412, "PATCH", `/v1/customers/${c1}`, { role: "ingest", headers: { "If-Match": "\"v999\"" }, body: { tier: "gold" } });
  const v1 = await check(200, "PATCH", `/v1/customers/${c1}`, { role: "ingest", headers: { "If-Match": etag }, body: { tier: "platinum" } });
  if (v1) await check(200, "PATCH", `/v1/customers/${c1}?_=1`, { role: "ingest", headers: { "If-Match": String(json(v1).version) }, body: { tier: "platinum" } });
  await check(200, "GET", `/v1/customers/${c1}`, { role: "agent", headers: { "If-None-Match": etag } });

  // a card with everything in it, and an ambiguous one
  await check(200, "GET", `/v1/context?id=${c1}`, { role: "agent" });
  await check(200, "GET", "/v1/context?phone=4155551212", { role: "agent" });

  // merge
  await check(200, "POST", `/v1/customers/dup-1/merge?into=${c2}`, { role: "ingest" });
  await check(200, "GET", "/v1/customers/dup-1", { role: "agent" });
  await check(409, "POST", `/v1/customers/${c2}/merge?into=${c2}`, { role: "ingest" });
  await check(400, "POST", `/v1/customers/${c2}/merge`, { role: "ingest" });
  await check(404, "POST", `/v1/customers/nobody/merge?into=${c2}`, { role: "ingest" });
  await check(403, "POST", `/v1/customers/${c2}/merge?into=${c1}`, { role: "agent" });

  // import
  const lines = [
    { type: "customer", id: "c-3003", name: "Cy" },
    { type: "event", customer_id: "c-3003", ts: now - 100, channel: "email", kind: "contact", outcome: "transferred" },
    { type: "issue", customer_id: "c-3003", issue_id: "T-1", status: "open" },
    { type: "event", customer_id: "nobody", ts: now, channel: "web", kind: "login" },
  ].map((o) => JSON.stringify(o)).join("\n") + "\n";
  const imp = await check(200, "POST", "/v1/import", { role: "ingest", headers: { "Content-Type": "application/x-ndjson" }, body: lines });
  if (imp && json(imp).errors?.[0]?.line !== 4) failures.push("import: the bad record's error does not name line 4");
  await check(200, "POST", "/v1/import?strict=false", { role: "admin", body: "" });
  await check(400, "POST", "/v1/import?strict=true", { role: "ingest", body: lines });
  await check(400, "POST", "/v1/import?strict=maybe", { role: "ingest", body: lines });
  await check(400, "POST", "/v1/import?limit=1", { role: "ingest", body: lines });
  await check(400, "POST", "/v1/import", { role: "ingest", body: "{\"type\":\"customer\",\"id\":\"x\"}\n[1]\n" });
  await check(413, "POST", "/v1/import", { role: "ingest", body: JSON.stringify({ type: "customer", id: "deep", preferences: deep }) + "\n" });
  await check(403, "POST", "/v1/import", { role: "agent", body: lines });

  // export
  await check(200, "GET", "/v1/export", { role: "admin" });
  await check(200, "GET", "/v1/export?limit=1", { role: "admin" });
  await check(200, "GET", `/v1/export?limit=1&after=${c1}`, { role: "admin" });
  await check(400, "GET", "/v1/export?limit=0", { role: "admin" });
  await check(400, "GET", "/v1/export?page=2", { role: "admin" });
  await check(403, "GET", "/v1/export", { role: "agent" });
  await check(401, "GET", "/v1/export");

  // backup
  const bdir = path.join(dir, "backup-1");
  await check(200, "POST", `/v1/admin/backup?dir=${encodeURIComponent(bdir)}`, { role: "admin" });
  await check(409, "POST", `/v1/admin/backup?dir=${encodeURIComponent(bdir)}`, { role: "admin" });
  await check(404, "POST", `/v1/admin/backup?dir=${encodeURIComponent(path.join(dir, "no", "such"))}`, { role: "admin" });
  await check(400, "POST", "/v1/admin/backup?dir=relative", { role: "admin" });
  await check(400, "POST", "/v1/admin/backup", { role: "admin" });
  await check(403, "POST", `/v1/admin/backup?dir=${encodeURIComponent(bdir)}`, { role: "ingest" });

  // forget
  await check(200, "DELETE", "/v1/customers/c-3003", { role: "admin" });
  await check(404, "DELETE", "/v1/customers/c-3003", { role: "admin" });
  await check(400, "DELETE", `/v1/customers/${c2}?now=1`, { role: "admin" });
  await check(403, "DELETE", `/v1/customers/${c2}`, { role: "ingest" });

  // 404 and 405 on every path: every method the document lacks
  await check(404, "GET", "/v2/nothing", { role: "admin" });
  await check(404, "GET", "/v1/customers/a/b/c/d", { role: "admin" });
  await check(404, "OPTIONS", "/v2/nothing");
  for (const p of Object.keys(doc.paths)) {
    const concrete = p.replace(/\{[^}]+\}/g, "x-1");
    for (const m of ["get", "put", "patch", "post", "delete", "head"])
      if (!doc.paths[p][m]) await check(405, m.toUpperCase(), concrete, { role: "admin", body: m === "get" || m === "delete" || m === "head" ? undefined : {}, noHead: true });
  }
  // an unknown method: libevent's 501, as JSON
  {
    const r = await send("BREW", "/v1/route?phone=1", { role: "admin" });
    checks++;
    const res = doc.components.responses.NotImplemented;
    const problem = r.status !== 501 ? `BREW: expected 501, got ${r.status}` :
      validateBody("BREW -> 501", res, r) || validateHeaders("BREW -> 501", res, r);
    if (problem) failures.push(problem);
  }

  // OPTIONS on every path (no token), CORS preflights from the allowed
  // origin and from another, and the CORS headers of other responses
  const preflight = { Origin: ORIGIN, "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "authorization, if-match" };
  for (const p of Object.keys(doc.paths)) {
    const concrete = p.replace(/\{[^}]+\}/g, c1);
    const plain = await check(204, "OPTIONS", concrete);
    expectHeaders(`OPTIONS ${concrete}`, plain, { Vary: "Origin", "Access-Control-Allow-Origin": undefined });
    const pf = await check(204, "OPTIONS", concrete, { headers: preflight });
    expectHeaders(`preflight ${concrete}`, pf, {
      Vary: "Origin", "Access-Control-Allow-Origin": ORIGIN, "Access-Control-Allow-Credentials": "true",
      "Access-Control-Allow-Methods": true, "Access-Control-Allow-Headers": true, "Access-Control-Max-Age": true,
    });
    const other = await check(204, "OPTIONS", concrete, { headers: { ...preflight, Origin: "https://evil.example.com" } });
    expectHeaders(`preflight from another origin ${concrete}`, other, {
      Vary: "Origin", "Access-Control-Allow-Origin": undefined, "Access-Control-Allow-Methods": undefined,
    });
  }
  await check(400, "OPTIONS", "/v1/customers/bad%zz");
  const cget = await check(200, "GET", `/v1/customers/${c1}`, { role: "agent", headers: { Origin: ORIGIN } });
  expectHeaders("GET from the allowed origin", cget, {
    Vary: "Origin", "Access-Control-Allow-Origin": ORIGIN, "Access-Control-Allow-Credentials": "true",
    "Access-Control-Expose-Headers": "X-Request-Id, ETag", "Access-Control-Allow-Methods": undefined, ETag: true,
  });
  const c401 = await check(401, "GET", `/v1/customers/${c1}`, { headers: { Origin: ORIGIN } });
  expectHeaders("401 to the allowed origin", c401, { "Access-Control-Allow-Origin": ORIGIN });
  const cother = await check(200, "PATCH", `/v1/customers/${c1}`, { role: "ingest", headers: { Origin: "https://evil.example.com" }, body: { tier: "platinum" } });
  expectHeaders("a write from another origin", cother, { Vary: "Origin", "Access-Control-Allow-Origin": undefined });

  // a body over max_request_bytes on every route that takes one: JSON 413
  // at once (before the token is looked at), without CORS headers
  const big = "x".repeat(MAX_BODY + 4464);
  for (const { path: p, method } of operations(doc)) {
    if (!["put", "patch", "post"].includes(method)) continue;
    let concrete = p.replace(/\{[^}]+\}/g, c1);
    if (p.endsWith("/merge")) concrete += `?into=${c2}`;
    if (p === "/v1/admin/backup") concrete += `?dir=${encodeURIComponent(path.join(dir, "backup-big"))}`;
    const r = await check(413, method.toUpperCase(), concrete, { role: "admin", headers: { Origin: ORIGIN }, body: big });
    expectHeaders(`${method.toUpperCase()} ${concrete} over max_request_bytes`, r, { "Access-Control-Allow-Origin": undefined, Connection: "close" });
  }
} finally {
  stop();
}

// --- coverage ------------------------------------------------------------------------
for (const { path: p, method, op } of operations(doc)) {
  const key = `${method.toUpperCase()} ${p}`;
  const st = [...(seen.get(key) || [])];
  if (!st.some((s) => s >= 200 && s < 300)) failures.push(`coverage: ${key} never answered 2xx`);
  if (op.security?.length !== 0 && !st.some((s) => s >= 400)) failures.push(`coverage: ${key} never answered an error`);
}

const summary = [...seen.entries()].map(([k, v]) => `  ${k}: ${[...v].sort().join(" ")}`).join("\n");
console.log(`openapi_conformance: ${checks} requests; statuses seen per operation:\n${summary}`);
if (failures.length) {
  for (const f of failures) console.error(`openapi_conformance: ${f}`);
  console.error(`openapi_conformance: FAIL (${failures.length} problems)`);
  if (log) console.error(`--- rapportd log (tail) ---\n${log.split("\n").slice(-20).join("\n")}`);
  process.exit(1);
}
console.log("openapi_conformance: ok");
