"use strict";
// node --test: rapport-client against a real rapportd (test/server.js).
const test = require("node:test");
const assert = require("node:assert/strict");
const net = require("node:net");
const { Readable } = require("node:stream");
const { Client, RapportError } = require("..");
const { Server, TOKENS } = require("./server");

// event times within the retention age (730 days) of the server's clock
const T0 = Math.floor(Date.now() / 1000) - 86400;
let server;
const clients = [];
function client(opts = {}) {
  const c = new Client({ port: server.port, token: TOKENS.admin, timeout: 5000, ...opts });
  clients.push(c);
  return c;
}

test.before(async () => { server = await new Server().start(); });
test.after(async () => {
  for (const c of clients) c.close();
  if (server) await server.cleanup();
});

async function rejectsWith(p, code) {
  await assert.rejects(p, (e) => {
    assert.ok(e instanceof RapportError, `not a RapportError: ${e}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

test("calls: every method", async () => {
  const c = client();
  await c.connect();
  const pong = await c.ping();
  assert.equal(pong.pong, true);

  assert.deepEqual(await c.customer.put("c-1001", { name: "Ada Lovelace", language: "es-MX",
    phones: ["+1 (415) 555-1212"], emails: ["ada@example.com"] }), { id: "c-1001", version: 1 });
  assert.deepEqual(await c.customer.patch("c-1001", { tier: "platinum" }, { expectVersion: 1 }),
    { id: "c-1001", version: 2 });
  await rejectsWith(c.customer.patch("c-1001", { tier: "gold" }, { expectVersion: 1 }), "CONFLICT");
  const got = await c.customer.get("c-1001");
  assert.equal(got.tier, "platinum");
  assert.deepEqual(got.phones, ["+14155551212"]);
  await rejectsWith(c.customer.get("nobody"), "NOT_FOUND");
  await rejectsWith(c.customer.put("c-x", { nmae: "typo" }), "BAD_REQUEST");

  assert.deepEqual(await c.issuePut({ customer_id: "c-1001", issue_id: "INC-9", topic: "delivery",
    status: "open", severity: "high", summary: "Parcel late" }), { customer_id: "c-1001", issue_id: "INC-9" });
  const iss = await c.issues("c-1001");
  assert.equal(iss.issues.length, 1);
  assert.equal(iss.issues[0].issue_id, "INC-9");

  for (let i = 0; i < 5; i++) {
    const r = await c.eventAppend({ customer_id: "c-1001", ts: T0 + i, channel: "phone",
      kind: "contact", topic: "delivery", issue_id: "INC-9" });
    assert.equal(r.duplicate, false);
  }
  const p1 = await c.history("c-1001", { limit: 2 });
  assert.equal(p1.events.length, 2);
  assert.equal(p1.events[0].ts, (T0 + 4));
  const p2 = await c.history("c-1001", { limit: 2, before: p1.next });
  assert.equal(p2.events[0].ts, (T0 + 2));
  const all = [];
  for await (const e of c.historyAll("c-1001", { limit: 2 })) all.push(e.ts);
  assert.deepEqual(all, [4, 3, 2, 1, 0].map((i) => T0 + i));

  const route = await c.route("+14155551212");
  assert.equal(route.found, true);
  assert.equal(route.customer_id, "c-1001");
  assert.equal(route.language, "es-MX");
  assert.equal((await c.route("anonymous")).found, false);

  const card = await c.context("415.555.1212", { at: T0 + 60 });
  assert.equal(card.found, true);
  assert.equal(card.customer.id, "c-1001");
  assert.equal(card.at, T0 + 60);
  assert.equal((await c.context({ email: "ada@example.com" })).customer.id, "c-1001");

  const lk = await c.lookup({ email: "ADA@example.com" });
  assert.equal(lk.found, true);
  assert.equal(lk.candidates[0].customer_id, "c-1001");

  await c.customer.put("c-2002", { name: "A. Lovelace" });
  const m = await c.customer.merge("c-2002", "c-1001");
  assert.equal(m.id, "c-1001");
  assert.equal((await c.customer.get("c-2002")).id, "c-1001");
  await c.customer.put("c-3003", { name: "Gone" });
  assert.deepEqual(await c.customer.forget("c-3003"), { id: "c-3003", forgotten: true });
  await rejectsWith(c.customer.get("c-3003"), "NOT_FOUND");

  const st = await c.stats();
  assert.ok(st.customers >= 1 && st.events >= 5 && typeof st.writer.commits === "number");
  await rejectsWith(c.call("no.such.method"), "BAD_REQUEST");
});

test("pipelining: many calls in flight on one connection, each gets its own reply, in order", async () => {
  const c = client({ poolSize: 1 });
  await c.connect();
  const ids = [];
  for (let i = 0; i < 20; i++) ids.push(`p-${i}`);
  await Promise.all(ids.map((id, i) => c.customer.put(id, { name: `n${i}` })));
  const order = [];
  const calls = [];
  for (let i = 0; i < 500; i++) {
    const id = ids[i % ids.length];
    // a mix: reads that succeed, reads that fail, and writes between them
    const p = i % 7 === 3 ? c.customer.get(`missing-${i}`)
      : i % 11 === 5 ? c.customer.patch(id, { preferred_name: `x${i}` })
      : c.customer.get(id);
    calls.push(p.then((r) => { order.push(i); return r; }, (e) => { order.push(i); return e; }));
  }
  assert.ok(c.poolState()[0].inFlight > 100, "the calls were in flight together");
  const res = await Promise.all(calls);
  res.forEach((r, i) => {
    if (i % 7 === 3) assert.equal(r.code, "NOT_FOUND");
    else assert.equal(r.id, ids[i % ids.length]);
  });
  assert.deepEqual(order, [...order].sort((a, b) => a - b), "replies settle in request order");
});

test("pool: calls spread over the connections (least-in-flight and round-robin)", async () => {
  for (const balance of ["least-in-flight", "round-robin"]) {
    const c = client({ poolSize: 4, balance });
    await c.connect();
    assert.equal(c.poolState().filter((s) => s.ready).length, 4);
    const ps = [];
    for (let i = 0; i < 40; i++) ps.push(c.ping());
    assert.deepEqual(c.poolState().map((s) => s.inFlight), [10, 10, 10, 10], balance);
    await Promise.all(ps);
    assert.deepEqual(c.poolState().map((s) => s.inFlight), [0, 0, 0, 0]);
  }
  assert.throws(() => new Client({ balance: "random" }), TypeError);
});

// A TCP server that accepts and never answers (or drops the connection).
function silentServer(onConn = () => {}) {
  return new Promise((resolve) => {
    const socks = new Set();
    const s = net.createServer((sock) => { socks.add(sock); sock.on("error", () => {}); sock.resume(); onConn(sock); });
    s.listen(0, "127.0.0.1", () => resolve({
      port: s.address().port,
      close: () => { for (const x of socks) x.destroy(); s.close(); },
    }));
  });
}

test("timeout: a server that never answers gives TIMEOUT, per call", async () => {
  const silent = await silentServer();
  try {
    const c = new Client({ port: silent.port, timeout: 300 });
    clients.push(c);
    const t0 = Date.now();
    await rejectsWith(c.ping(), "TIMEOUT");
    assert.ok(Date.now() - t0 >= 290);
    const t1 = Date.now();
    await rejectsWith(c.ping({ timeout: 100 }), "TIMEOUT");
    assert.ok(Date.now() - t1 < 290);
    // with a token, the connection never gets past auth: calls wait, then time out
    const a = new Client({ port: silent.port, token: "x".repeat(20), timeout: 200, connectTimeout: 1000 });
    clients.push(a);
    await rejectsWith(a.ping(), "TIMEOUT");
    await rejectsWith(a.connect({ timeout: 200 }), "TIMEOUT");
  } finally {
    silent.close();
  }
});

test("disconnect: calls in flight on a dropped connection fail with DISCONNECTED", async () => {
  const socks = [];
  const flaky = await silentServer((s) => socks.push(s));
  try {
    const c = new Client({ port: flaky.port, timeout: 5000, poolSize: 1 });
    clients.push(c);
    const ps = [c.ping(), c.stats(), c.ping()];
    while (!socks.length || c.poolState()[0].inFlight < 3) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 50));
    socks[0].destroy();
    for (const p of ps) await rejectsWith(p, "DISCONNECTED");
  } finally {
    flaky.close();
  }
});

test("reconnect: after rapportd restarts, waiting calls go through (back-off, same port and data)", async () => {
  const c = client({ poolSize: 2, timeout: 10000, reconnect: { initialDelay: 20, maxDelay: 200 } });
  await c.connect();
  await c.customer.put("r-1", { name: "Before restart" });
  await server.stop("SIGKILL");
  // in flight when the server died, or sent while it is down
  const during = c.customer.get("r-1").then((r) => r, (e) => e);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(c.poolState().filter((s) => s.ready).length, 0);
  const later = c.customer.get("r-1");
  await server.restart();
  // the call made while down waits for the reconnect and succeeds
  assert.equal((await later).name, "Before restart");
  const d = await during;
  if (d instanceof RapportError) assert.equal(d.code, "DISCONNECTED");
  else assert.equal(d.name, "Before restart");
  await c.connect({ timeout: 5000 });
  assert.equal(c.poolState().filter((s) => s.ready).length, 2);
  // a short timeout while the server is down: TIMEOUT, not a hang
  await server.stop("SIGTERM");
  await rejectsWith(c.ping({ timeout: 200 }), "TIMEOUT");
  await server.restart();
  assert.equal((await c.ping({ timeout: 5000 })).pong, true);
});

test("auth: a wrong token is UNAUTHORIZED, no token is UNAUTHORIZED, a role's limits are FORBIDDEN", async () => {
  const bad = client({ token: "wrong-token-0123456789", timeout: 2000 });
  await rejectsWith(bad.connect(), "UNAUTHORIZED");
  await rejectsWith(bad.ping(), "UNAUTHORIZED");
  const none = client({ token: undefined });
  assert.equal((await none.ping()).pong, true); // ping needs no token
  await rejectsWith(none.customer.get("c-1001"), "UNAUTHORIZED");
  assert.deepEqual(await none.auth(TOKENS.agent), { role: "agent" });
  const route = client({ token: TOKENS.route });
  assert.equal((await route.route("+14155551212")).found, true);
  await rejectsWith(route.customer.put("c-9", { name: "x" }), "FORBIDDEN");
});

test("idempotent retry: the same idempotency key twice stores one event", async () => {
  const c = client();
  await c.customer.put("i-1", { name: "Idem" });
  const ev = { customer_id: "i-1", ts: (T0 - 1000), channel: "web", kind: "login" };
  const before = (await c.stats()).events;
  const r1 = await c.eventAppend(ev, { idempotencyKey: "test:evt-1" });
  const r2 = await c.eventAppend(ev, { idempotencyKey: "test:evt-1" });
  assert.deepEqual(r2, r1);
  assert.equal((await c.stats()).events, before + 1);
  assert.equal((await c.history("i-1")).events.length, 1);
  // the same key for another request is CONFLICT
  await rejectsWith(c.eventAppend({ ...ev, kind: "logout" }, { idempotencyKey: "test:evt-1" }), "CONFLICT");
  // event_id makes a retry without a key safe too
  const e1 = await c.eventAppend({ ...ev, ts: (T0 - 900), event_id: "crm-1" });
  const e2 = await c.eventAppend({ ...ev, ts: (T0 - 800), event_id: "crm-1" });
  assert.equal(e1.duplicate, false);
  assert.equal(e2.duplicate, true);
  assert.equal(e2.ts, (T0 - 900));
  // keyed writes of the other methods
  const k = { idempotencyKey: "test:put-1" };
  assert.deepEqual(await c.customer.put("i-2", { name: "Two" }, k), await c.customer.put("i-2", { name: "Two" }, k));
});

function ndjson(n, prefix) {
  const lines = [];
  for (let i = 0; i < n; i++) {
    lines.push(JSON.stringify({ type: "customer", id: `${prefix}-${i}`, name: `Cust ${i}` }));
    lines.push(JSON.stringify({ type: "event", customer_id: `${prefix}-${i}`, ts: (T0 - 1000) + i,
      channel: "web", kind: "login", event_id: `${prefix}-ev-${i}` }));
  }
  return lines;
}

test("import: from a byte stream of NDJSON, batched; again: all duplicates", async () => {
  const c = client();
  const text = "\ufeff" + ndjson(600, "im").join("\r\n") + "\n\n" +
    '{"type":"event","customer_id":"nobody","ts":1,"channel":"web","kind":"x"}\n';
  const before = (await c.stats()).customers;
  // chunks cut anywhere, even inside a UTF-8 sequence or a \r\n
  const buf = Buffer.from(text, "utf8");
  const chunks = [];
  for (let i = 0; i < buf.length; i += 777) chunks.push(buf.subarray(i, i + 777));
  const r = await c.import(Readable.from(chunks, { objectMode: false }));
  assert.equal(r.imported, 1200);
  assert.equal(r.skipped, 1);
  assert.equal(r.batches, 3);
  assert.deepEqual(r.errors, [{ index: 1200, line: 1202, code: "NOT_FOUND",
    message: "no customer with id 'nobody'" }]);
  assert.equal((await c.stats()).customers, before + 600);
  const again = await c.import(ndjson(600, "im").join("\n"));
  assert.equal(again.imported, 1200);
  assert.equal(again.duplicates, 600);
});

test("import: from an async iterable of objects and lines; strict stops at a refused batch", async () => {
  const c = client();
  async function* objs() {
    for (let i = 0; i < 30; i++) yield { type: "customer", id: `io-${i}`, name: `O ${i}` };
    yield JSON.stringify({ type: "issue", customer_id: "io-0", issue_id: "INC-1", topic: "billing" });
    yield "not json";
  }
  const r = await c.import(objs(), { batchSize: 7 });
  assert.equal(r.imported, 31);
  assert.equal(r.batches, 5);
  assert.equal(r.skipped, 1);
  assert.equal(r.errors[0].line, 32);
  assert.equal(r.errors[0].code, "BAD_REQUEST");
  const bad = [{ type: "customer", id: "is-1", name: "S" },
    { type: "event", customer_id: "nobody", ts: 1, channel: "web", kind: "x" }];
  await assert.rejects(c.import(bad, { strict: true }), (e) => {
    assert.equal(e.code, "BAD_REQUEST");
    assert.match(e.message, /^line 2: /);
    return true;
  });
  await rejectsWith(c.customer.get("is-1"), "NOT_FOUND");
});
