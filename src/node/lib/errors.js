"use strict";
// The error a call rejects with. `code` is one of the server's stable words
// (proto/PROTOCOL.md, "Errors") or a client-side one: TIMEOUT (no reply in
// time: the request may or may not have been applied) and DISCONNECTED (the
// connection closed before the reply, or the client was closed).

const SERVER_CODES = ["NOT_FOUND", "BAD_REQUEST", "UNAUTHORIZED", "FORBIDDEN", "CONFLICT",
  "TOO_LARGE", "STORE_FULL", "UNAVAILABLE", "INTERNAL"];
const CLIENT_CODES = ["TIMEOUT", "DISCONNECTED"];
const CODES = Object.freeze(Object.fromEntries([...SERVER_CODES, ...CLIENT_CODES].map((c) => [c, c])));

class RapportError extends Error {
  constructor(code, message, { method, remote = false, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "RapportError";
    this.code = code;
    this.method = method;
    this.remote = remote; // true: the server answered with this error
  }

  // Worth sending again (after a back-off; with an idempotency key for writes).
  get retryable() {
    return this.code === "UNAVAILABLE" || this.code === "TIMEOUT" || this.code === "DISCONNECTED";
  }
}

module.exports = { RapportError, CODES, SERVER_CODES, CLIENT_CODES };
