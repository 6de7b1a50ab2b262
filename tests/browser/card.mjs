// card.mjs — the agent's page (GET /card) in a real headless browser:
// Debian's chromium driven by playwright-core (no browser download).
//
//   node tests/browser/card.mjs build/rapportd build/screenshots
//
// Starts rapportd (no tokens: loopback, admin), stores a demo customer, a
// shared line, then: the card at 400 px and 1280 px shows the name, the top
// reason and every cue; screenshots card-400.png / card-1280.png are saved
// and must not be blank; the first-contact and shared-line views; Tab
// reaches the candidates' links; a page on another origin that frames the
// card is refused (CSP frame-ancestors 'self').
import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const [bin, shots] = process.argv.slice(2);
const CHROMIUM = process.env.RAPPORT_CHROMIUM || "/usr/bin/chromium";
const failures = [];
const ok = (cond, msg) => { if (!cond) failures.push(msg); };

const freePort = () => new Promise((res) => {
  const s = net.createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); });
});

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rapport-browser-"));
const port = await freePort(), rpc = await freePort();
const base = `http://127.0.0.1:${port}`;
const server = spawn(bin, ["--data", path.join(dir, "data"), "--listen", `127.0.0.1:${rpc}`,
  "--http", `127.0.0.1:${port}`], { stdio: ["ignore", "ignore", "pipe"] });
let log = "";
server.stderr.on("data", (d) => { log += d; });
process.on("exit", () => { if (server.exitCode === null) server.kill("SIGKILL"); fs.rmSync(dir, { recursive: true, force: true }); });

async function req(method, p, body) {
  const r = await fetch(base + p, { method, headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined });
  if (r.status !== 200) throw new Error(`${method} ${p}: ${r.status} ${await r.text()}`);
  return r;
}
for (let i = 0; ; i++) {
  try { await req("GET", "/healthz"); break; } catch (e) {
    if (i > 100) throw new Error(`rapportd did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const now = Math.floor(Date.now() / 1000);
await req("PUT", "/v1/customers/C-2002", { name: "Priya Raman", preferred_name: "Priya", language: "es-MX",
  tier: "platinum", customer_since: now - 9 * 365 * 86400, flags: ["hearing_impaired"], phones: ["+14155551212"] });
for (let d = 3; d >= 1; d--)
  await req("POST", "/v1/customers/C-2002/events", { ts: now - d * 86400, channel: "phone", kind: "contact",
    topic: "delivery", summary: `Where is order #5521? (call ${4 - d})`, outcome: "unresolved", sentiment: -0.6, agent: "sam.r", issue_id: "I-555" });
await req("PUT", "/v1/customers/C-2002/issues/I-555", { topic: "delivery", summary: "Order #5521 held at depot",
  opened_at: now - 4 * 86400, updated_at: now - 86400, follow_up_due: now - 7200 });
await req("PUT", "/v1/customers/C-201", { name: "Maria Lopez", phones: ["+14155550100"] });
await req("PUT", "/v1/customers/C-202", { name: "Jose Lopez", phones: ["+14155550100"] });
const at = now + 60; // one moment for the API and the page
const card = await (await req("GET", `/v1/context?id=C-2002&at=${at}`)).json();

fs.mkdirSync(shots, { recursive: true });
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
try {
  for (const width of [400, 1280]) {
    const page = await browser.newPage({ viewport: { width, height: 900 } });
    const resp = await page.goto(`${base}/card?id=C-2002&at=${at}`);
    ok(resp.status() === 200, `${width}: status ${resp.status()}`);
    ok((await page.textContent("h1")).trim() === "Priya", `${width}: the name`);
    const top = (await page.textContent(".top-reason .evidence")).trim();
    ok(top === card.likely_reasons[0].evidence, `${width}: top reason '${top}'`);
    ok(await page.isVisible(".top-reason"), `${width}: top reason visible`);
    for (const c of card.cues) {
      const el = page.locator(`.cue[data-code="${c.code}"]`);
      ok(await el.isVisible(), `${width}: cue ${c.code} visible`);
      ok((await el.locator(".cue-text").textContent()).trim() === c.text, `${width}: cue ${c.code} text`);
    }
    ok(card.cues.length >= 4, `the demo card has ${card.cues.length} cues`);
    const sw = await page.evaluate(() => document.documentElement.scrollWidth);
    ok(sw <= width, `${width}: no horizontal scroll (scrollWidth ${sw})`);
    const png = await page.screenshot({ fullPage: true });
    fs.writeFileSync(path.join(shots, `card-${width}.png`), png);
    ok(png.length > 10000, `${width}: screenshot only ${png.length} bytes`);
    // pixel variety: decode the PNG in a blank page's canvas
    const blank = await browser.newPage();
    const colours = await blank.evaluate(async (b64) => {
      const img = new Image();
      img.src = `data:image/png;base64,${b64}`;
      await img.decode();
      const c = document.createElement("canvas");
      c.width = img.width; c.height = img.height;
      const g = c.getContext("2d");
      g.drawImage(img, 0, 0);
      const d = g.getImageData(0, 0, c.width, c.height).data;
      const seen = new Set();
      for (let i = 0; i < d.length; i += 4 * 97) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
      return seen.size;
    }, png.toString("base64"));
    ok(colours >= 8, `${width}: screenshot has ${colours} colours (blank?)`);
    await blank.close();
    await page.close();
  }

  const page = await browser.newPage({ viewport: { width: 400, height: 800 } });
  await page.goto(`${base}/card?phone=%2B1%20212%20555%200000`);
  ok((await page.textContent("h1")).trim() === "First contact", "unknown caller: First contact");
  ok(await page.isVisible('.cue[data-code="first_contact"]'), "unknown caller: the first_contact cue");

  await page.goto(`${base}/card?phone=4155550100`);
  ok((await page.textContent("h1")).trim() === "Shared line", "shared line view");
  const links = await page.$$eval(".candidates a", (as) => as.map((a) => a.getAttribute("href")));
  ok(links.length === 2 && links.includes("/card?id=C-201") && links.includes("/card?id=C-202"), `candidates ${links}`);
  const focused = [];
  for (let i = 0; i < 4; i++) {
    await page.keyboard.press("Tab");
    focused.push(await page.evaluate(() => document.activeElement?.getAttribute("href")));
  }
  ok(focused.includes("/card?id=C-201") && focused.includes("/card?id=C-202"), `Tab reached ${focused}`);
  await page.goto(`${base}/card?phone=4155550100`);
  await page.keyboard.press("Tab");
  await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
  ok(/\/card\?id=C-20[12]$/.test(page.url()), `Enter on a candidate opens its card (${page.url()})`);
  ok(/Lopez|Maria|Jose/.test(await page.textContent("h1")), "the candidate's card");

  // framed by a page of another origin: refused by frame-ancestors 'self'
  const other = http.createServer((q, s) => {
    s.writeHead(200, { "Content-Type": "text/html" });
    s.end(`<!DOCTYPE html><title>CRM</title><iframe id="f" src="${base}/card?id=C-2002" width="400" height="600"></iframe>`);
  });
  await new Promise((r) => other.listen(0, "127.0.0.1", r));
  const crm = await browser.newPage();
  const hdr = crm.waitForResponse((r) => r.url().startsWith(`${base}/card`));
  await crm.goto(`http://localhost:${other.address().port}/`);
  const r = await hdr;
  ok(/frame-ancestors 'self'/.test(r.headers()["content-security-policy"] || ""), "CSP frame-ancestors on the framed page");
  // goto resolved on the CRM page's load event, which waits for its frames
  // (the blocked one included): nothing to wait for here.
  const frame = crm.frames().find((f) => f !== crm.mainFrame());
  let framedText = "";
  try { framedText = frame ? await frame.evaluate(() => document.body?.innerText || "") : ""; } catch { framedText = ""; }
  ok(!framedText.includes("Priya"), `the card rendered inside another origin's frame (${frame?.url()})`);
  other.close();
} finally {
  await browser.close();
  server.kill("SIGTERM");
}

if (failures.length) {
  console.error(`card_browser: ${failures.length} failure(s):\n  ${failures.join("\n  ")}`);
  process.exit(1);
}
console.log(`card_browser: ok (screenshots in ${shots})`);
