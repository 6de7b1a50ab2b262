"use strict";
// rapport-client — a Node.js client for rapportd's MessagePack-RPC face
// (proto/PROTOCOL.md, proto/METHODS.md). Plain JavaScript, no native code;
// its one dependency is @msgpack/msgpack. Types: ../index.d.ts.
//
// - A Client holds a pool of `poolSize` TCP connections. A call goes to the
//   ready connection with the fewest calls in flight (or round-robin).
// - Each connection pipelines: requests are written as soon as they are made
//   (everything made in one tick goes out in one write) and replies, which
//   the server sends in request order, are matched by msgid.
// - Every call has a timeout (TIMEOUT). A connection that drops fails its
//   calls in flight with DISCONNECTED and reconnects with exponential
//   back-off (with jitter); calls made meanwhile wait for a ready connection
//   until their timeout.
// - With a token, every (re)connection first calls `auth`; a refused token
//   fails the calls waiting for it with UNAUTHORIZED.

const net = require("node:net");
const { Encoder, Decoder } = require("@msgpack/msgpack");
const { RapportError, CODES } = require("./errors");
const { importRecords } = require("./import");

const encoder = new Encoder({ ignoreUndefined: true });
const decoder = new Decoder();

// The end offset of the MessagePack object starting at buf[pos], or -1 when
// it has not all arrived yet. Iterative: `need` counts the objects still to
// skip. Throws on 0xc1 (never used).
function msgEnd(buf, pos) {
  const len = buf.length;
  let need = 1;
  while (need > 0) {
    if (pos >= len) return -1;
    const b = buf[pos++];
    need--;
    if (b <= 0x7f || b >= 0xe0) continue;
    if (b <= 0x8f) { need += 2 * (b & 0x0f); continue; }
    if (b <= 0x9f) { need += b & 0x0f; continue; }
    if (b <= 0xbf) { pos += b & 0x1f; continue; }
    let n;
    switch (b) {
      case 0xc0: case 0xc2: case 0xc3: continue;
      case 0xc4: case 0xd9: if (pos + 1 > len) return -1; pos += 1 + buf[pos]; continue;
      case 0xc5: case 0xda: if (pos + 2 > len) return -1; pos += 2 + buf.readUInt16BE(pos); continue;
      case 0xc6: case 0xdb: if (pos + 4 > len) return -1; pos += 4 + buf.readUInt32BE(pos); continue;
      case 0xc7: if (pos + 1 > len) return -1; pos += 2 + buf[pos]; continue;
      case 0xc8: if (pos + 2 > len) return -1; pos += 3 + buf.readUInt16BE(pos); continue;
      case 0xc9: if (pos + 4 > len) return -1; pos += 5 + buf.readUInt32BE(pos); continue;
      case 0xcc: case 0xd0: pos += 1; continue;
      case 0xcd: case 0xd1: pos += 2; continue;
      case 0xca: case 0xce: case 0xd2: pos += 4; continue;
      case 0xcb: case 0xcf: case 0xd3: pos += 8; continue;
      case 0xd4: pos += 2; continue;
      case 0xd5: pos += 3; continue;
      case 0xd6: pos += 5; continue;
      case 0xd7: pos += 9; continue;
      case 0xd8: pos += 17; continue;
      case 0xdc: if (pos + 2 > len) return -1; n = buf.readUInt16BE(pos); pos += 2; need += n; continue;
      case 0xdd: if (pos + 4 > len) return -1; n = buf.readUInt32BE(pos); pos += 4; need += n; continue;
      case 0xde: if (pos + 2 > len) return -1; n = buf.readUInt16BE(pos); pos += 2; need += 2 * n; continue;
      case 0xdf: if (pos + 4 > len) return -1; n = buf.readUInt32BE(pos); pos += 4; need += 2 * n; continue;
      default: throw new RapportError("INTERNAL", "malformed MessagePack from the server (byte 0xc1)");
    }
  }
  return pos > len ? -1 : pos;
}

function serverError(err, method) {
  if (err && typeof err === "object")
    return new RapportError(String(err.code || "INTERNAL"), String(err.message || "error"), { method, remote: true });
  return new RapportError("INTERNAL", `unexpected error value ${JSON.stringify(err)}`, { method, remote: true });
}

// One call: settled once, by its reply, its timeout or its connection.
class Call {
  constructor(client, method, params, timeout, resolve, reject) {
    this.client = client;
    this.method = method;
    this.params = params;
    this.resolve = resolve;
    this.reject = reject;
    this.done = false;
    this.conn = null;
    this.timer = timeout > 0 && Number.isFinite(timeout)
      ? setTimeout(() => this.fail(new RapportError("TIMEOUT",
        `${method}: no reply within ${timeout} ms`, { method })), timeout)
      : null;
    if (this.timer && this.timer.unref && client.unrefTimers) this.timer.unref();
  }
  ok(v) {
    if (this.done) return;
    this.done = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.conn) this.conn.inFlight--;
    this.resolve(v);
  }
  fail(e) {
    if (this.done) return;
    this.done = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.conn) this.conn.inFlight--;
    else this.client._unwait(this);
    this.reject(e);
  }
}

// One pooled connection: connects, authenticates, pipelines, reconnects.
class Connection {
  constructor(client, index) {
    this.client = client;
    this.index = index;
    this.sock = null;
    this.ready = false;
    this.closed = false;
    this.nextId = 1;
    this.pending = new Map(); // msgid -> Call (replies come in order; the map also tolerates otherwise)
    this.inFlight = 0;
    this.out = [];
    this.flushQueued = false;
    this.inbuf = null;
    this.attempt = 0;
    this.retryTimer = null;
    this.lastError = null;
    this.fatal = null; // a msgid-0 error: the server is closing the connection because of it
  }

  id() {
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    return id;
  }

  open() {
    if (this.closed) return;
    const c = this.client;
    const sock = net.connect({ host: c.host, port: c.port });
    this.sock = sock;
    this.inbuf = null;
    this.fatal = null;
    sock.setNoDelay(true);
    const ctimer = setTimeout(() => sock.destroy(new RapportError("TIMEOUT",
      `connect to ${c.host}:${c.port}: no answer within ${c.connectTimeout} ms`)), c.connectTimeout);
    sock.on("connect", () => {
      clearTimeout(ctimer);
      this.handshake(sock);
    });
    sock.on("data", (d) => this.onData(d));
    sock.on("error", (e) => { this.lastError = e; });
    sock.on("close", () => {
      clearTimeout(ctimer);
      this.onClose(sock);
    });
  }

  // Sent first on every (re)connection: auth when there is a token. The
  // connection is not given calls before it answered.
  handshake(sock) {
    const c = this.client;
    if (c.token === undefined || c.token === null) return this.becomeReady();
    const call = new Call(c, "auth", { token: c.token }, c.connectTimeout,
      () => this.becomeReady(),
      (e) => {
        this.lastError = e;
        if (e instanceof RapportError && (e.code === "UNAUTHORIZED" || e.code === "FORBIDDEN")) {
          c._authFailed(e);
        }
        sock.destroy();
      });
    this.send(call);
  }

  becomeReady() {
    if (this.closed) return;
    this.ready = true;
    this.attempt = 0;
    this.lastError = null;
    this.client._ready(this);
  }

  send(call) {
    call.conn = this;
    this.inFlight++;
    const msgid = this.id();
    this.pending.set(msgid, call);
    let bytes;
    try {
      bytes = encoder.encode([0, msgid, call.method, call.params === undefined ? {} : call.params]);
    } catch (e) {
      this.pending.delete(msgid);
      call.fail(new RapportError("BAD_REQUEST", `${call.method}: params cannot be encoded: ${e.message}`, { method: call.method }));
      return;
    }
    this.out.push(bytes);
    if (!this.flushQueued) {
      this.flushQueued = true;
      process.nextTick(() => this.flush());
    }
  }

  flush() {
    this.flushQueued = false;
    if (!this.out.length || !this.sock || this.sock.destroyed) return;
    const data = this.out.length === 1 ? this.out[0] : Buffer.concat(this.out);
    this.out = [];
    this.sock.write(data);
  }

  onData(d) {
    let buf = this.inbuf ? Buffer.concat([this.inbuf, d]) : d;
    let pos = 0;
    for (;;) {
      let end;
      try {
        end = msgEnd(buf, pos);
      } catch (e) {
        this.lastError = e;
        this.sock.destroy();
        return;
      }
      if (end < 0) break;
      let msg;
      try {
        msg = decoder.decode(buf.subarray(pos, end));
      } catch (e) {
        this.lastError = e;
        this.sock.destroy();
        return;
      }
      pos = end;
      this.onMessage(msg);
    }
    this.inbuf = pos < buf.length ? buf.subarray(pos) : null;
  }

  onMessage(msg) {
    if (!Array.isArray(msg) || msg.length !== 4 || msg[0] !== 1) return; // not a response: ignore
    const [, msgid, err, result] = msg;
    if (msgid === 0) { // the server closes this connection because of err
      this.fatal = serverError(err, undefined);
      return;
    }
    const call = this.pending.get(msgid);
    if (!call) return; // a reply to a call that has gone (cannot happen: we keep them until the reply)
    this.pending.delete(msgid);
    if (err !== null && err !== undefined) call.fail(serverError(err, call.method));
    else call.ok(result);
  }

  onClose(sock) {
    if (sock !== this.sock) return;
    const wasReady = this.ready;
    this.ready = false;
    this.sock = null;
    this.out = [];
    const why = this.fatal || this.lastError;
    for (const call of this.pending.values()) {
      const e = this.fatal && this.fatal.code !== "INTERNAL"
        ? new RapportError(this.fatal.code, `${call.method}: ${this.fatal.message}`, { method: call.method, remote: true })
        : new RapportError("DISCONNECTED", `${call.method}: the connection closed before the reply` +
          (why ? ` (${why.message})` : ""), { method: call.method, cause: why || undefined });
      call.fail(e);
    }
    this.pending.clear();
    this.inFlight = 0;
    if (wasReady) this.client._lost(this, why);
    if (this.closed) return;
    this.client._failedAttempt(this, why);
    const r = this.client.reconnect;
    const delay = Math.min(r.maxDelay, r.initialDelay * Math.pow(r.factor, this.attempt));
    this.attempt++;
    const jittered = delay * (0.5 + Math.random() * 0.5);
    this.retryTimer = setTimeout(() => { this.retryTimer = null; this.open(); }, wasReady ? 0 : jittered);
    if (this.retryTimer.unref) this.retryTimer.unref();
  }

  close() {
    this.closed = true;
    this.ready = false;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.sock) {
      this.flush();
      this.sock.end();
      const s = this.sock;
      setTimeout(() => s.destroy(), 1000).unref();
    }
  }
}

const DEFAULTS = {
  host: "127.0.0.1",
  port: 7070,
  poolSize: 2,
  balance: "least-in-flight",
  timeout: 5000,
  connectTimeout: 3000,
  reconnect: { initialDelay: 50, maxDelay: 5000, factor: 2 },
};

class Client {
  constructor(opts = {}) {
    if (typeof opts === "string") {
      const m = /^(.*):(\d+)$/.exec(opts);
      if (!m) throw new TypeError(`address '${opts}' is not HOST:PORT`);
      opts = { host: m[1], port: Number(m[2]) };
    }
    this.host = opts.host || DEFAULTS.host;
    this.port = opts.port || DEFAULTS.port;
    this.token = opts.token;
    this.poolSize = Math.max(1, opts.poolSize || DEFAULTS.poolSize);
    this.balance = opts.balance || DEFAULTS.balance;
    if (this.balance !== "least-in-flight" && this.balance !== "round-robin")
      throw new TypeError(`balance must be 'least-in-flight' or 'round-robin', not '${this.balance}'`);
    this.timeout = opts.timeout === undefined ? DEFAULTS.timeout : opts.timeout;
    this.connectTimeout = opts.connectTimeout || DEFAULTS.connectTimeout;
    this.reconnect = { ...DEFAULTS.reconnect, ...(opts.reconnect || {}) };
    this.unrefTimers = !!opts.unrefTimers;
    this.rr = 0;
    this.waiting = new Set(); // calls waiting for a ready connection
    this.readyWaiters = [];
    this.closed = false;
    this.authError = null;
    this.conns = [];
    for (let i = 0; i < this.poolSize; i++) this.conns.push(new Connection(this, i));
    for (const c of this.conns) c.open();

    const self = this;
    this.customer = {
      get: (id, o) => self.call("customer.get", { id }, o),
      put: (id, customer, o = {}) => self.call("customer.put",
        { id, customer, expect_version: o.expectVersion, idempotency_key: o.idempotencyKey }, o),
      patch: (id, patch, o = {}) => self.call("customer.patch",
        { id, patch, expect_version: o.expectVersion, idempotency_key: o.idempotencyKey }, o),
      forget: (id, o = {}) => self.call("customer.forget", { id, idempotency_key: o.idempotencyKey }, o),
      merge: (from, into, o = {}) => self.call("customer.merge",
        { from, into, idempotency_key: o.idempotencyKey }, o),
    };
  }

  // Resolves once every connection of the pool is ready (connected and
  // authenticated); rejects with UNAUTHORIZED for a refused token, or
  // TIMEOUT after `timeout` ms (default: the connect timeout).
  connect({ timeout } = {}) {
    if (this.conns.every((c) => c.ready)) return Promise.resolve(this);
    if (this.authError) return Promise.reject(this.authError);
    const t = timeout || this.connectTimeout;
    return new Promise((resolve, reject) => {
      const w = { resolve, reject };
      w.timer = setTimeout(() => {
        this.readyWaiters = this.readyWaiters.filter((x) => x !== w);
        const last = this.conns.map((c) => c.lastError).find(Boolean);
        reject(new RapportError("TIMEOUT", `connect to ${this.host}:${this.port}: not ready within ${t} ms` +
          (last ? ` (${last.message})` : ""), { cause: last || undefined }));
      }, t);
      this.readyWaiters.push(w);
    });
  }

  _ready(conn) {
    this.authError = null;
    for (const call of [...this.waiting]) {
      if (!conn.ready) break;
      this.waiting.delete(call);
      if (!call.done) conn.send(call);
    }
    if (this.conns.every((c) => c.ready)) {
      const ws = this.readyWaiters;
      this.readyWaiters = [];
      for (const w of ws) { clearTimeout(w.timer); w.resolve(this); }
    }
  }

  _authFailed(e) {
    this.authError = e;
    const ws = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of ws) { clearTimeout(w.timer); w.reject(e); }
    if (this.conns.some((c) => c.ready)) return;
    for (const call of [...this.waiting]) {
      call.fail(new RapportError(e.code, `${call.method}: ${e.message}`, { method: call.method, remote: true }));
    }
  }

  _lost(/* conn, why */) {}
  _failedAttempt(/* conn, why */) {}

  _unwait(call) { this.waiting.delete(call); }

  _pick() {
    const n = this.conns.length;
    if (this.balance === "round-robin") {
      for (let i = 0; i < n; i++) {
        const c = this.conns[(this.rr + i) % n];
        if (c.ready) { this.rr = (this.rr + i + 1) % n; return c; }
      }
      return null;
    }
    let best = null;
    for (const c of this.conns) if (c.ready && (!best || c.inFlight < best.inFlight)) best = c;
    return best;
  }

  // The raw call: `method` with `params` (a map); resolves with the result,
  // rejects with a RapportError. opts.timeout overrides the client's.
  call(method, params = {}, opts = {}) {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new RapportError("DISCONNECTED", `${method}: the client is closed`, { method }));
        return;
      }
      const t = opts && opts.timeout !== undefined ? opts.timeout : this.timeout;
      const call = new Call(this, method, params, t, resolve, reject);
      const conn = this._pick();
      if (conn) conn.send(call);
      else if (this.authError) call.fail(new RapportError(this.authError.code,
        `${method}: ${this.authError.message}`, { method, remote: true }));
      else this.waiting.add(call);
    });
  }

  /** Connections of the pool that are ready, and calls in flight on each. */
  poolState() {
    return this.conns.map((c) => ({ ready: c.ready, inFlight: c.inFlight }));
  }

  ping(o) { return this.call("ping", {}, o); }
  auth(token, o) { return this.call("auth", { token }, o); }

  // key: a phone (string) or {phone}|{email}|{account}|{id}.
  context(key, o = {}) {
    const k = typeof key === "string" ? { phone: key } : { ...key };
    return this.call("context.get", { ...k, at: o.at }, o);
  }

  route(phone, o = {}) { return this.call("route.get", { phone, at: o.at }, o); }

  // key: a phone (string) or {phone}|{email}|{account}.
  lookup(key, o) {
    return this.call("lookup", typeof key === "string" ? { phone: key } : { ...key }, o);
  }

  eventAppend(event, o = {}) {
    return this.call("event.append", { event, idempotency_key: o.idempotencyKey }, o);
  }

  issuePut(issue, o = {}) {
    return this.call("issue.put", { issue, idempotency_key: o.idempotencyKey }, o);
  }

  // The result {customer_id, issues, [truncated]}.
  issues(id, o) { return this.call("issue.list", { id }, o); }

  // One page, newest first: {customer_id, events, next}; pass `next` as
  // `before` for the following page (nil at the end).
  history(id, o = {}) {
    return this.call("history.list", { id, limit: o.limit, before: o.before }, o);
  }

  // Every event of a customer, newest first, page by page.
  async *historyAll(id, o = {}) {
    let before = o.before;
    for (;;) {
      const page = await this.history(id, { ...o, before });
      for (const e of page.events) yield e;
      if (page.next === null || page.next === undefined) return;
      before = page.next;
    }
  }

  stats(o) { return this.call("stats", {}, o); }

  // Records from an NDJSON stream or an iterable of lines/objects, sent in
  // batches (see lib/import.js).
  import(source, o = {}) { return importRecords(this, source, o); }

  // Stops reconnecting and closes every connection after what was written
  // has been sent; calls still waiting fail with DISCONNECTED.
  close() {
    this.closed = true;
    for (const call of [...this.waiting])
      call.fail(new RapportError("DISCONNECTED", `${call.method}: the client was closed`, { method: call.method }));
    for (const c of this.conns) c.close();
    for (const w of this.readyWaiters) {
      clearTimeout(w.timer);
      w.reject(new RapportError("DISCONNECTED", "the client was closed"));
    }
    this.readyWaiters = [];
  }
}

module.exports = { Client, RapportError, CODES, _msgEnd: msgEnd };
