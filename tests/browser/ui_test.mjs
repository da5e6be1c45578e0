// The vsess web page in a real browser: headless Debian Chromium driven by playwright-core,
// against a real `vsess serve` (started by run.sh) and real pyVmomi sessions.
//
// Steps (each counts as one test; after a failure the rest are skipped):
//   the page loads offline under its CSP, with no console errors;
//   a reader signs in, and the cookie is Secure, HttpOnly and SameSite=Strict;
//   the reader's pyVmomi sessions are listed (agent, IP, login time, idle), the admin's not;
//   a new pyVmomi session appears without a page reload;
//   user-controlled text (a hostile User-Agent) is shown as text, never run;
//   "End session" on one row ends it: pyVmomi's next call raises vim.fault.NotAuthenticated,
//   while the reader's other session still works;
//   an administrator sees everyone's sessions and sets the service message, which
//   pyVmomi then reads;
//   sign-out returns to the sign-in form, and the old cookie no longer works.
// Screenshots go to $VSESS_ARTIFACTS: ui.png (the administrator's view), ui-reader.png,
// ui-sign-in.png, and ui-failure.png when a step fails.
//
// Environment (run.sh sets it): VSESS_URL, VSESS_READER, VSESS_READER_PW, VSESS_ADMIN,
// VSESS_ADMIN_PW, VSESS_PYTHON, CHROMIUM, VSESS_ARTIFACTS.
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import https from "node:https";
import assert from "node:assert/strict";

const here = dirname(fileURLToPath(import.meta.url));
const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set (run tests/browser/run.sh)`);
  return v;
};
const BASE = env("VSESS_URL").replace(/\/$/, "");
const READER = env("VSESS_READER");
const READER_PW = env("VSESS_READER_PW");
const ADMIN = env("VSESS_ADMIN");
const ADMIN_PW = env("VSESS_ADMIN_PW");
const PYTHON = env("VSESS_PYTHON");
const CHROMIUM = env("CHROMIUM");
const ARTIFACTS = env("VSESS_ARTIFACTS");
const url = new URL(BASE);
const STEP_TIMEOUT = 15_000;
const log = (...a) => console.log("[browser]", ...a);

// ---- pyVmomi, held in one Python process so that each session's "next call" is real ----

class PyVmomi {
  constructor() {
    const childEnv = { ...process.env, VSESS_HOST: url.hostname, VSESS_PORT: url.port || "443" };
    for (const k of ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"]) delete childEnv[k];
    this.proc = spawn(PYTHON, [join(here, "pyvmomi_helper.py")], {
      env: childEnv,
      stdio: ["pipe", "pipe", "inherit"],
    });
    this.waiting = [];
    createInterface({ input: this.proc.stdout }).on("line", (line) => {
      const w = this.waiting.shift();
      if (w) w.resolve(JSON.parse(line));
    });
    this.proc.on("exit", (code) => {
      for (const w of this.waiting.splice(0)) w.reject(new Error(`pyVmomi helper exited (${code})`));
    });
  }
  ask(req) {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`pyVmomi helper: no answer to ${req.cmd}`)), 60_000);
      this.waiting.push({
        resolve: (v) => { clearTimeout(t); resolve(v); },
        reject: (e) => { clearTimeout(t); reject(e); },
      });
      this.proc.stdin.write(JSON.stringify(req) + "\n");
    });
  }
  async connect(name, user, pwd) {
    const r = await this.ask({ cmd: "connect", name, user, pwd });
    assert.ok(r.ok, `SmartConnect ${name}: ${r.error}`);
    return r.key;
  }
  call(name) {
    return this.ask({ cmd: "call", name });
  }
  async message(name) {
    const r = await this.ask({ cmd: "message", name });
    assert.ok(r.ok, `message: ${r.error}`);
    return r.message;
  }
  close() {
    try {
      this.proc.stdin.end(JSON.stringify({ cmd: "quit" }) + "\n");
    } catch (_) { /* gone already */ }
  }
}

// A raw SOAP Login with a chosen User-Agent (pyVmomi cannot set one per session).
function soapLogin(user, pwd, agent) {
  const esc = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  const body = `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><Login xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this><userName>${esc(user)}</userName><password>${esc(pwd)}</password></Login></soapenv:Body></soapenv:Envelope>`;
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: url.hostname,
        port: url.port,
        path: "/sdk",
        method: "POST",
        rejectUnauthorized: false, // the server's self-signed certificate
        headers: {
          "Content-Type": "text/xml; charset=UTF-8",
          SOAPAction: '"urn:vim25/8.0.3.0"',
          "User-Agent": agent,
        },
      },
      (res) => {
        let text = "";
        res.on("data", (c) => (text += c));
        res.on("end", () => {
          const key = /<key>([^<]+)<\/key>/.exec(text);
          if (res.statusCode === 200 && key) resolve(key[1]);
          else reject(new Error(`SOAP Login: HTTP ${res.statusCode}`));
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

// ---- steps ------------------------------------------------------------------------------

const steps = [];
const step = (name, fn) => steps.push({ name, fn });
const ctx = {};

const rowFor = (page, table, key) => page.locator(`#${table}-body tr[data-key="${key}"]`);

async function signIn(page, user, pwd) {
  await page.locator("#sign-in-view").waitFor({ state: "visible", timeout: STEP_TIMEOUT });
  await page.fill("#username", user);
  await page.fill("#password", pwd);
  await page.click("#sign-in-button");
  await page.locator("#app-view").waitFor({ state: "visible", timeout: STEP_TIMEOUT });
}

step("the page loads offline under its CSP, with no console errors", async () => {
  const { page } = ctx;
  const r = await page.goto(`${BASE}/ui`, { waitUntil: "load" });
  assert.equal(r.status(), 200);
  const h = r.headers();
  assert.match(h["content-security-policy"], /default-src 'none'/);
  assert.match(h["content-security-policy"], /frame-ancestors 'none'/);
  assert.equal(h["x-content-type-options"], "nosniff");
  assert.equal(h["cache-control"], "no-store");
  await page.locator("#sign-in-view").waitFor({ state: "visible", timeout: STEP_TIMEOUT });
  assert.equal(await page.locator("h1").first().textContent(), "Sign in");
  // The style sheet applied (a CSP block would leave the default look).
  const bg = await page.evaluate(() => getComputedStyle(document.querySelector("#sign-in-button")).backgroundColor);
  assert.notEqual(bg, "rgba(0, 0, 0, 0)", "app.css is applied");
  assert.deepEqual(ctx.offsite, [], "no request left the server's origin");
  assert.deepEqual(ctx.consoleErrors, [], "no console errors or CSP violations");
  await page.screenshot({ path: join(ARTIFACTS, "ui-sign-in.png") });
});

step("a reader signs in; the cookie is Secure, HttpOnly and SameSite=Strict", async () => {
  const { page, context } = ctx;
  // A wrong password first: an error, and still the sign-in form.
  await page.fill("#username", READER);
  await page.fill("#password", "not-the-password");
  await page.click("#sign-in-button");
  await page.locator("#sign-in-error").waitFor({ state: "visible", timeout: STEP_TIMEOUT });
  assert.match(await page.locator("#sign-in-error").textContent(), /Wrong user name or password/);
  await signIn(page, READER, READER_PW);
  assert.equal(await page.locator("#who-name").textContent(), "VSPHERE.LOCAL\\reader");
  const cookies = await context.cookies(BASE);
  const c = cookies.find((c) => c.name === "__Host-vsess-ui");
  assert.ok(c, `the page's cookie is set: ${cookies.map((c) => c.name)}`);
  assert.equal(c.secure, true);
  assert.equal(c.httpOnly, true);
  assert.equal(c.sameSite, "Strict");
  assert.equal(c.path, "/");
  assert.equal(await page.evaluate(() => document.cookie.includes("vsess-ui")), false, "scripts cannot read it");
});

step("the reader's pyVmomi sessions are listed, the administrator's are not", async () => {
  const { page } = ctx;
  for (const key of [ctx.keys.r1, ctx.keys.r2]) {
    await rowFor(page, "mine", key).waitFor({ state: "visible", timeout: STEP_TIMEOUT });
  }
  const row = rowFor(page, "mine", ctx.keys.r1);
  assert.match(await row.locator("td.agent").textContent(), /pyvmomi/i);
  assert.equal(await row.locator("td.ip").textContent(), "127.0.0.1");
  assert.match(await row.locator("td.login").textContent(), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
  assert.match(await row.locator("td.idle").textContent(), /^\d+ (s|min \d+ s)$/);
  assert.equal(await rowFor(page, "mine", ctx.keys.a1).count(), 0, "not the admin's session");
  assert.equal(await page.locator("#all-card").isVisible(), false, "readers get no 'All sessions'");
  assert.equal(await page.locator("#admin-message").isVisible(), false, "nor the message editor");
});

step("a new pyVmomi session appears without a page reload", async () => {
  const { page, py } = ctx;
  await page.evaluate(() => { window.__sameDocument = true; });
  const navigations = ctx.navigations;
  ctx.keys.r3 = await py.connect("r3", READER, READER_PW);
  await rowFor(page, "mine", ctx.keys.r3).waitFor({ state: "visible", timeout: 12_000 });
  assert.equal(await page.evaluate(() => window.__sameDocument === true), true, "same document");
  assert.equal(ctx.navigations, navigations, "no navigation happened");
});

step("a hostile User-Agent is shown as text, never run", async () => {
  const { page } = ctx;
  const agent = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>';
  ctx.keys.hostile = await soapLogin(READER, READER_PW, agent);
  const row = rowFor(page, "mine", ctx.keys.hostile);
  await row.waitFor({ state: "visible", timeout: 12_000 });
  assert.equal(await row.locator("td.agent").textContent(), agent);
  assert.equal(await row.locator("img, script").count(), 0);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
});

step("'End session' ends one pyVmomi session: its next call raises NotAuthenticated", async () => {
  const { page, py } = ctx;
  // Both work before.
  assert.deepEqual(await py.call("r1"), { ok: true });
  assert.deepEqual(await py.call("r2"), { ok: true });
  const row = rowFor(page, "mine", ctx.keys.r1);
  await row.locator("button.end").click();
  await row.waitFor({ state: "detached", timeout: STEP_TIMEOUT });
  const ended = await py.call("r1");
  assert.equal(ended.ok, false, "the ended session's call must fail");
  assert.equal(ended.fault, "vim.fault.NotAuthenticated", JSON.stringify(ended));
  assert.deepEqual(await py.call("r2"), { ok: true }, "the reader's other session still works");
  // It stays gone after the next refresh, and the other rows stay.
  await page.waitForTimeout(5_500);
  assert.equal(await rowFor(page, "mine", ctx.keys.r1).count(), 0);
  assert.equal(await rowFor(page, "mine", ctx.keys.r2).count(), 1);
  await page.screenshot({ path: join(ARTIFACTS, "ui-reader.png"), fullPage: true });
});

step("an administrator sees everyone's sessions and sets the service message", async () => {
  const { page, py } = ctx;
  await page.click("#sign-out");
  await signIn(page, ADMIN, ADMIN_PW);
  await page.locator("#all-card").waitFor({ state: "visible", timeout: STEP_TIMEOUT });
  for (const key of [ctx.keys.r2, ctx.keys.r3, ctx.keys.a1]) {
    await rowFor(page, "all", key).waitFor({ state: "visible", timeout: STEP_TIMEOUT });
  }
  assert.equal(await rowFor(page, "all", ctx.keys.r1).count(), 0, "the ended session is gone");
  assert.equal(await rowFor(page, "all", ctx.keys.r2).locator("td.user").textContent(), "VSPHERE.LOCAL\\reader");
  assert.equal(await rowFor(page, "mine", ctx.keys.a1).count(), 1, "the admin's own list");
  assert.equal(await rowFor(page, "mine", ctx.keys.r2).count(), 0);
  // End the hostile session from "All sessions" (another user's).
  await rowFor(page, "all", ctx.keys.hostile).locator("button.end").click();
  await rowFor(page, "all", ctx.keys.hostile).waitFor({ state: "detached", timeout: STEP_TIMEOUT });
  // The message.
  const text = "Maintenance tonight 18:00–19:00 UTC. <b>Save your work</b>.";
  await page.fill("#message-text", text);
  await page.click("#message-save");
  await page.locator("#message-status").filter({ hasText: "Saved" }).waitFor({ timeout: STEP_TIMEOUT });
  assert.equal(await py.message("a1"), text, "pyVmomi reads the new message");
  assert.equal(await py.message("r2"), text);
  await page.locator("#banner").filter({ hasText: "Maintenance tonight" }).waitFor({ timeout: STEP_TIMEOUT });
  assert.equal(await page.locator("#banner b").count(), 0, "the message is text, not HTML");
  await page.waitForTimeout(300);
  await page.screenshot({ path: join(ARTIFACTS, "ui.png"), fullPage: true });
});

step("sign-out returns to the sign-in form and the old cookie stops working", async () => {
  const { page, context } = ctx;
  const before = (await context.cookies(BASE)).find((c) => c.name === "__Host-vsess-ui");
  assert.ok(before);
  await page.click("#sign-out");
  await page.locator("#sign-in-view").waitFor({ state: "visible", timeout: STEP_TIMEOUT });
  const after = (await context.cookies(BASE)).find((c) => c.name === "__Host-vsess-ui");
  assert.equal(after, undefined, "the cookie is cleared");
  // Replay the old cookie: the token was revoked on the server.
  const status = await new Promise((resolve, reject) => {
    https
      .get(
        { host: url.hostname, port: url.port, path: "/ui/api/sessions", rejectUnauthorized: false,
          headers: { Cookie: `${before.name}=${before.value}` } },
        (res) => { res.resume(); resolve(res.statusCode); },
      )
      .on("error", reject);
  });
  assert.equal(status, 401);
  // Reloading shows the sign-in form again.
  await page.reload();
  await page.locator("#sign-in-view").waitFor({ state: "visible", timeout: STEP_TIMEOUT });
  assert.deepEqual(ctx.offsite, [], "no request left the server's origin");
  assert.deepEqual(ctx.consoleErrors, [], "no console errors or CSP violations");
});

// ---- runner -----------------------------------------------------------------------------

async function main() {
  mkdirSync(ARTIFACTS, { recursive: true });
  const py = new PyVmomi();
  ctx.py = py;
  const profile = mkdtempSync(join(tmpdir(), "vsess-chromium-"));
  let context = null;
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  try {
    log("pyVmomi: creating sessions");
    ctx.keys = {
      r1: await py.connect("r1", READER, READER_PW),
      r2: await py.connect("r2", READER, READER_PW),
      a1: await py.connect("a1", ADMIN, ADMIN_PW),
    };
    log(`launching ${CHROMIUM}`);
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      ignoreHTTPSErrors: true,
      viewport: { width: 1280, height: 860 },
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--ignore-certificate-errors",
      ],
    });
    ctx.context = context;
    ctx.offsite = [];
    ctx.consoleErrors = [];
    ctx.navigations = 0;
    // Anything not from the server's origin is recorded and refused: the page must work
    // offline.
    await context.route("**/*", (route) => {
      const u = new URL(route.request().url());
      if (u.origin === url.origin) return route.continue();
      ctx.offsite.push(u.href);
      return route.abort();
    });
    const page = context.pages()[0] || (await context.newPage());
    ctx.page = page;
    // Console errors: script errors and CSP violations. A 401 answer is logged by Chromium
    // as a failed resource; those are expected (a wrong password, a refresh racing a
    // sign-out) and are left out.
    page.on("console", (m) => {
      if (m.type() === "error" && !/status of 401/.test(m.text())) ctx.consoleErrors.push(m.text());
    });
    page.on("pageerror", (e) => ctx.consoleErrors.push(String(e)));
    page.on("framenavigated", (f) => {
      if (f === page.mainFrame()) ctx.navigations += 1;
    });
    for (const s of steps) {
      if (failed > 0) {
        skipped += 1;
        console.log(`SKIP ${s.name}`);
        continue;
      }
      const t0 = Date.now();
      try {
        await s.fn();
        passed += 1;
        console.log(`PASS ${s.name} (${Date.now() - t0} ms)`);
      } catch (e) {
        failed += 1;
        console.log(`FAIL ${s.name} (${Date.now() - t0} ms)\n${e && e.stack ? e.stack : e}`);
        try {
          await page.screenshot({ path: join(ARTIFACTS, "ui-failure.png"), fullPage: true });
          console.log(`failure screenshot: ${join(ARTIFACTS, "ui-failure.png")}`);
        } catch (_) { /* no page to show */ }
      }
    }
  } catch (e) {
    console.log(`FAIL setup\n${e && e.stack ? e.stack : e}`);
    failed += 1;
    skipped += steps.length - passed;
  } finally {
    if (context) await context.close().catch(() => {});
    py.close();
    rmSync(profile, { recursive: true, force: true });
  }
  if (passed > 0 && failed === 0) log(`screenshot: ${join(ARTIFACTS, "ui.png")}`);
  console.log(`browser: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
  process.exit(failed === 0 && passed === steps.length ? 0 : 1);
}

const guard = setTimeout(() => {
  console.log("FAIL the browser test took longer than 180 s\nbrowser: 0 passed, 1 failed");
  process.exit(1);
}, 180_000);
guard.unref();
main();
