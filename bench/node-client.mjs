// bench/node-client.mjs — throughput of rapport-client (src/node) against a
// running rapportd: keeps IN_FLIGHT calls in flight over POOL connections
// for SECONDS and prints calls/s. Compare with rapport-bench on the same
// server and the same connection count and depth, e.g.
//
//   node bench/node-client.mjs --op ping --pool 1 --inflight 50 --seconds 5
//   build/rapport-bench --op ping --conns 1 --pipeline 50 --seconds 5
//
// --op ping | route (route.get of --phone; an unknown number is a valid
// answer). --addr HOST:PORT (default 127.0.0.1:7070), --token T.
// A benchmark, not a test: needs `npm ci` in src/node (tools/setup does it).
import { createRequire } from "node:module";
const require = createRequire(import.meta.url);
const { Client } = require("../src/node/lib/index.js");

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const op = arg("op", "ping");
const [host, port] = arg("addr", "127.0.0.1:7070").split(":");
const pool = Number(arg("pool", 1));
const inflight = Number(arg("inflight", 50));
const seconds = Number(arg("seconds", 5));
const warmup = Number(arg("warmup", 1));
const phone = arg("phone", "+14155551212");

const c = new Client({ host, port: Number(port), token: arg("token"), poolSize: pool, timeout: 10000 });
await c.connect();
const one = op === "route" ? () => c.route(phone) : op === "ping" ? () => c.ping() : null;
if (!one) { console.error(`unknown --op ${op}`); process.exit(2); }

let done = 0, errors = 0, counting = false, stop = false;
async function worker() {
  while (!stop) {
    try { await one(); } catch { errors++; }
    if (counting) done++;
  }
}
const workers = Array.from({ length: inflight }, worker);
await new Promise((r) => setTimeout(r, warmup * 1000));
counting = true;
const t0 = process.hrtime.bigint();
await new Promise((r) => setTimeout(r, seconds * 1000));
counting = false;
const dt = Number(process.hrtime.bigint() - t0) / 1e9;
stop = true;
await Promise.all(workers);
c.close();
const rate = done / dt;
console.log(JSON.stringify({ op, pool, inflight, seconds: +dt.toFixed(3), calls: done, errors,
  calls_per_s: Math.round(rate) }));
process.exit(errors ? 1 : 0);
