"use strict";
// Starts a real rapportd for the tests: the binary from $RAPPORTD (ctest
// passes the built one), a temp data dir, a free 127.0.0.1 port, tokens in
// a config file, HTTP off. stop()/restart() keep the port and the data.
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");

const TOKENS = {
  admin: "admin-token-0123456789",
  agent: "agent-token-0123456789",
  route: "route-token-0123456789",
  ingest: "ingest-token-0123456789",
};

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port }, () => { s.destroy(); resolve(true); });
    s.on("error", () => resolve(false));
  });
}

class Server {
  constructor() {
    const bin = process.env.RAPPORTD || path.join(__dirname, "../../../build/rapportd");
    if (!fs.existsSync(bin)) throw new Error(`no rapportd at ${bin}: set RAPPORTD or build first`);
    this.bin = bin;
    this.dir = fs.mkdtempSync(path.join(process.env.TMPDIR || os.tmpdir(), "rp-node-"));
    this.config = path.join(this.dir, "rapportd.conf");
    fs.writeFileSync(this.config, Object.entries(TOKENS).map(([r, s]) => `token = ${r}:${s}\n`).join("") +
      "threads = 2\nmap_initial = 8388608\n", { mode: 0o600 });
    this.proc = null;
    this.port = 0;
    this.log = "";
  }

  async start() {
    for (let attempt = 0; attempt < 5; attempt++) {
      if (!this.port || attempt > 0) this.port = await freePort();
      if (await this._spawn()) return this;
      if (!/in use/i.test(this.log)) break;
    }
    throw new Error(`rapportd did not start:\n${this.log}`);
  }

  // Starts again on the same port and data (after stop()).
  async restart() {
    for (let i = 0; i < 50; i++) {
      if (await this._spawn()) return this;
      if (!/in use/i.test(this.log)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`rapportd did not restart:\n${this.log}`);
  }

  async _spawn() {
    this.log = "";
    const p = spawn(this.bin, ["--config", this.config, "--data", path.join(this.dir, "data"),
      "--listen", `127.0.0.1:${this.port}`, "--http", ""], { stdio: ["ignore", "ignore", "pipe"] });
    this.proc = p;
    p.stderr.on("data", (d) => { this.log += d; });
    let exited = false;
    p.once("exit", () => { exited = true; });
    for (let i = 0; i < 100 && !exited; i++) {
      if (/event=listening/.test(this.log) && await canConnect(this.port)) return true;
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!exited) p.kill("SIGKILL");
    return false;
  }

  // SIGKILL (a crash) or SIGTERM (a clean stop); resolves once it exited.
  stop(signal = "SIGTERM") {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => { p.once("exit", () => resolve()); p.kill(signal); });
  }

  async cleanup() {
    await this.stop("SIGKILL");
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

module.exports = { Server, TOKENS, freePort };
