"use strict";
// Client.import: records from NDJSON text or objects, sent as `import`
// batches the way `rapport import` does (src/cli/ndjson.c): at most 500
// records or 1 MiB of MessagePack a batch; without `strict` up to 4 batches
// in flight, so the next batch is read while earlier ones commit; with
// `strict` one at a time, stopping at the first refused batch (whose records
// are not written; earlier batches stay committed).
//
// Sources: a string or Buffer (the whole NDJSON text); a byte stream (a
// non-object-mode Readable: NDJSON text, split at line ends); or any sync or
// async iterable whose items are lines (strings: one JSON object each) or
// records (objects). As in RECORDS.md "NDJSON lines": blank lines (only
// spaces, tabs, \r) are ignored, \r\n is accepted, a UTF-8 BOM opening the
// text is dropped. Lines are numbered from 1 counting blank ones; objects
// given directly are numbered by their position.

const { Readable } = require("node:stream");
const { StringDecoder } = require("node:string_decoder");
const { Encoder } = require("@msgpack/msgpack");
const { RapportError } = require("./errors");

const BATCH = 500;
const BATCH_BYTES = 1 << 20;
const WINDOW = 4;
const sizer = new Encoder({ ignoreUndefined: true });

// Yields {line, text} or {line, record}.
async function* items(source) {
  let line = 0;
  if (typeof source === "string" || Buffer.isBuffer(source) || source instanceof Uint8Array) {
    source = [Buffer.isBuffer(source) || source instanceof Uint8Array ? Buffer.from(source) : Buffer.from(source, "utf8")];
    source.isText = true;
  }
  const text = source.isText || (source instanceof Readable && !source.readableObjectMode);
  if (text) {
    const dec = new StringDecoder("utf8");
    let rest = "";
    let first = true;
    for await (const chunk of source) {
      rest += typeof chunk === "string" ? chunk : dec.write(chunk);
      if (first && rest.length) {
        if (rest.charCodeAt(0) === 0xfeff) rest = rest.slice(1);
        first = false;
      }
      let nl;
      while ((nl = rest.indexOf("\n")) >= 0) {
        yield { line: ++line, text: rest.slice(0, nl) };
        rest = rest.slice(nl + 1);
      }
    }
    rest += dec.end();
    if (rest.length) yield { line: ++line, text: rest };
    return;
  }
  for await (const it of source) {
    line++;
    if (typeof it === "string") yield { line, text: it };
    else if (Buffer.isBuffer(it) || it instanceof Uint8Array) yield { line, text: Buffer.from(it).toString("utf8") };
    else yield { line, record: it };
  }
}

// The record of an item, or throws a BAD_REQUEST "line N: ...".
function parse(it) {
  let rec = it.record;
  if (rec === undefined) {
    const t = it.text.endsWith("\r") ? it.text.slice(0, -1) : it.text;
    if (/^[ \t\r]*$/.test(t)) return null;
    try {
      rec = JSON.parse(t);
    } catch (e) {
      throw new RapportError("BAD_REQUEST", `line ${it.line}: not JSON: ${e.message}`, { method: "import" });
    }
  }
  if (rec === null || typeof rec !== "object" || Array.isArray(rec))
    throw new RapportError("BAD_REQUEST", `line ${it.line}: not a JSON object`, { method: "import" });
  return rec;
}

async function importRecords(client, source, o = {}) {
  const strict = !!o.strict;
  const max = Math.max(1, Math.min(o.batchSize || BATCH, 10000));
  const maxBytes = o.batchBytes || BATCH_BYTES;
  const window = strict ? 1 : Math.max(1, o.window || WINDOW);
  const callOpts = o.timeout === undefined ? {} : { timeout: o.timeout };
  const out = { imported: 0, skipped: 0, duplicates: 0, errors: [], batches: 0, lines: 0 };
  const inflight = new Set();
  let failure = null;
  let index = 0; // records sent so far: the global index of the next one

  const send = (batch) => {
    out.batches++;
    const p = client.call("import", { records: batch.records, strict: strict || undefined }, callOpts).then((r) => {
      out.imported += r.imported || 0;
      out.skipped += r.skipped || 0;
      out.duplicates += r.duplicates || 0;
      for (const e of r.errors || [])
        out.errors.push({ index: batch.first + e.index, line: batch.lines[e.index], code: e.code, message: e.message });
      if (r.errors_truncated) out.errors_truncated = true;
    }, (e) => {
      if (failure) return;
      let msg = e.message;
      const m = /^records\[(\d+)\]: (.*)$/s.exec(msg);
      if (m && batch.lines[Number(m[1])] !== undefined) msg = `line ${batch.lines[Number(m[1])]}: ${m[2]}`;
      else msg = `the batch of lines ${batch.lines[0]}..${batch.lines[batch.lines.length - 1]} failed: ${msg}`;
      failure = new RapportError(e.code, msg, { method: "import", remote: e.remote, cause: e });
    }).finally(() => inflight.delete(p));
    inflight.add(p);
  };

  let batch = { records: [], lines: [], bytes: 0, first: 0 };
  const fail = (e) => {
    e.result = out;
    throw e;
  };
  for await (const it of items(source)) {
    if (failure) break;
    out.lines = it.line;
    let rec;
    try {
      rec = parse(it);
    } catch (e) {
      if (strict) {
        await Promise.all(inflight);
        fail(failure || e);
      }
      out.skipped++;
      out.errors.push({ index: null, line: it.line, code: e.code, message: e.message });
      continue;
    }
    if (rec === null) continue;
    const size = sizer.encode(rec).length;
    if (batch.records.length && (batch.records.length >= max || batch.bytes + size > maxBytes)) {
      while (inflight.size >= window) await Promise.race(inflight);
      if (failure) break;
      send(batch);
      batch = { records: [], lines: [], bytes: 0, first: index };
    }
    batch.records.push(rec);
    batch.lines.push(it.line);
    batch.bytes += size;
    index++;
  }
  if (!failure && batch.records.length) send(batch);
  await Promise.all(inflight);
  if (failure) fail(failure);
  return out;
}

module.exports = { importRecords };
