// Real-browser end-to-end test of the Sentinel dashboard, driven by tests/server_browser.rs.
// Debian's chromium through playwright-core (no browser download). Every step throws on
// failure; the process exit code is the verdict.
import { chromium } from "playwright-core";
import { createHmac } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`missing env ${k}`); return v; };
const BASE = env("BASE");
const SHOTS = env("SHOTS");

function base32Decode(s) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0, value = 0; const out = [];
  for (const c of s.replace(/=+$/, "").toUpperCase()) {
    const i = alphabet.indexOf(c);
    if (i < 0) throw new Error("bad base32");
    value = (value << 5) | i; bits += 5;
    if (bits >= 8) { out.push((value >>> (bits - 8)) & 0xff); bits -= 8; }
  }
  return Buffer.from(out);
}

function totp(secret, step) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const h = createHmac("sha1", base32Decode(secret)).update(msg).digest();
  const off = h[h.length - 1] & 0x0f;
  const bin = ((h[off] & 0x7f) << 24) | (h[off + 1] << 16) | (h[off + 2] << 8) | h[off + 3];
  return String(bin % 1000000).padStart(6, "0");
}

const step = () => Math.floor(Date.now() / 1000 / 30);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function check(cond, msg) { if (!cond) throw new Error("check failed: " + msg); }

async function login(page, user, pass) {
  await page.goto(BASE + "/login");
  await page.fill("input[name=username]", user);
  await page.fill("input[name=password]", pass);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
}

async function logout(page) {
  await Promise.all([page.waitForNavigation(), page.click("header form[action='/logout'] button")]);
  check(page.url().endsWith("/login"), "signed out to /login");
}

// Ingest keys are bound to one host each: INGEST_KEYS maps host name -> key.
function keyFor(host) {
  const k = JSON.parse(env("INGEST_KEYS"))[host];
  if (!k) throw new Error("no ingest key for host " + host);
  return k;
}

async function ingest(id, host, level) {
  const now = Date.now() * 1e6;
  const anomaly = {
    id, host, time_ns: now,
    principal: { uid: 1001, user: "mallory" },
    chain: [{ pid: 1, exe: "/usr/lib/systemd/systemd", uid: 0 }, { pid: 777, exe: "/tmp/.x", argv: ["/tmp/.x", "-c"], uid: 1001 }],
    score: 80, level,
    factors: [{ detection: "exec_from_tmp", reason: "mallory ran /tmp/.x, never seen before", weight: 80, evidence: ["e1"] }],
    evidence: [{ id: "e1", time_ns: now, summary: "execve /tmp/.x", detail: { exe: "/tmp/.x" } }],
    fingerprint: "fp-" + id,
  };
  const r = await fetch(BASE + "/api/ingest", {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer " + keyFor(host) },
    body: JSON.stringify({ batch_id: "browser-" + id, anomalies: [anomaly] }),
  });
  check(r.ok, "ingest accepted: " + r.status);
}

async function snapshot(host) {
  const snap = {
    system: { hostname: host, kernel: "Linux 6.1.0" },
    process_summary: { total_count: 212, zombie_count: 1 },
    network: { total_listeners: 2, listeners: [
      { protocol: "tcp", address: "0.0.0.0", port: 22, pid: 612, process: "sshd" },
      { protocol: "tcp6", address: "::", port: 8080, pid: 990, process: "<script>x</script>" }] },
    config_files: [{ path: "/etc/ssh/sshd_config", permissions: "0644", modified: "2026-11-26T10:00:00Z", checksum: "ab12" }],
    audit_summary: { enabled: true, risk_score: 18, risk_level: "high", learning: { confidence: "medium" },
      authentication: { failures: 14, brute_force_detected: true }, privilege_escalation: { sudo_count: 3 },
      process_activity: { tmp_executions: 2, devshm_executions: 0 } },
  };
  const r = await fetch(BASE + "/api/ingest", {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer " + keyFor(host) },
    body: JSON.stringify({ batch_id: "snap-" + Date.now(), snapshots: [snap] }),
  });
  check(r.ok, "snapshot accepted: " + r.status);
}

const profile = mkdtempSync(join(tmpdir(), "sentinel-chromium-"));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
  viewport: { width: 1280, height: 860 },
});
try {
  const page = ctx.pages()[0] || (await ctx.newPage());
  page.setDefaultTimeout(20000);
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));

  // 1. Admin signs in with a password and enables 2FA with a generated code.
  await login(page, env("ADMIN_USER"), env("ADMIN_PASS"));
  check(new URL(page.url()).pathname === "/", "admin lands on the feed, at " + page.url());
  await page.goto(BASE + "/profile");
  // Setting up two-factor asks for the password again (a session cookie alone is not enough).
  await page.fill("#totp-setup-password", env("ADMIN_PASS"));
  await Promise.all([page.waitForNavigation(), page.click("#totp-setup")]);
  const secret = (await page.textContent("#totp-secret")).trim();
  check(await page.isVisible(".qr svg"), "QR code shown");
  const enableStep = step();
  await page.fill("#totp-code", totp(secret, enableStep));
  await Promise.all([page.waitForNavigation(), page.click("#totp-enable")]);
  check(await page.isVisible("#recovery-codes"), "recovery codes shown after enabling");
  await page.screenshot({ path: join(SHOTS, "profile-2fa.png"), fullPage: true });

  // 2. Sign out, sign in again with password + a fresh code (the enabling one is spent).
  await logout(page);
  await login(page, env("ADMIN_USER"), env("ADMIN_PASS"));
  check(page.url().endsWith("/login/totp"), "second factor asked");
  while (step() <= enableStep) await sleep(500);
  await page.fill("input[name=code]", totp(secret, step()));
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  check(new URL(page.url()).pathname === "/", "signed in with 2FA, at " + page.url());

  // 3. The live feed shows an anomaly an agent pushes, without a reload.
  await page.waitForFunction(() => document.getElementById("live-status")?.textContent === "live");
  const marker = await page.evaluate(() => (window.__marker = Math.random()));
  const id1 = "browser-" + Date.now();
  await ingest(id1, "<b>web-7</b>", "critical");
  await page.waitForSelector(`#feed tr[data-id="${id1}"]`);
  check((await page.evaluate(() => window.__marker)) === marker, "no reload happened");
  const hostCell = await page.textContent(`#feed tr[data-id="${id1}"] td:nth-child(3)`);
  check(hostCell === "<b>web-7</b>", "host shown as text: " + hostCell);
  await page.screenshot({ path: join(SHOTS, "feed.png"), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: join(SHOTS, "feed-phone.png"), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 860 });
  await snapshot("<b>web-7</b>");
  await page.goto(BASE + "/hosts/" + encodeURIComponent("<b>web-7</b>"));
  check((await page.textContent("h1")).includes("<b>web-7</b>"), "host page title is text");
  check(await page.isVisible("svg.spark"), "risk sparkline shown");
  await page.screenshot({ path: join(SHOTS, "host.png"), fullPage: true });
  await page.goto(BASE + "/admin/users");
  await page.screenshot({ path: join(SHOTS, "admin-users.png"), fullPage: true });
  await page.goto(BASE + "/admin/audit");
  check((await page.textContent("table")).includes("2fa_enabled"), "audit log lists 2FA enabling");
  await page.screenshot({ path: join(SHOTS, "admin-audit.png"), fullPage: true });
  await logout(page);

  // 4. An operator acknowledges it.
  await login(page, env("OPERATOR_USER"), env("OPERATOR_PASS"));
  await page.goto(BASE + "/anomalies/" + encodeURIComponent(id1));
  await Promise.all([page.waitForNavigation(), page.click("#ack")]);
  const status = await page.textContent("dl.facts");
  check(status.includes("Acknowledged by " + env("OPERATOR_USER")), "acknowledged by the operator");
  await page.screenshot({ path: join(SHOTS, "anomaly.png"), fullPage: true });
  // ... and marks it benign for this program, with a note: pending until its agent asks.
  await page.selectOption("form.feedback select[name=scope]", "exe");
  await page.fill("form.feedback input[name=note]", "our build helper");
  await Promise.all([page.waitForNavigation(), page.click("#verdict-benign")]);
  const verdicts = await page.textContent("table.verdicts");
  check(verdicts.includes("benign") && verdicts.includes("exe") && verdicts.includes("our build helper")
    && verdicts.includes("pending"), "verdict shown as pending: " + verdicts);
  check((await page.$("#verdict-benign")) === null && (await page.$("button.undo")) !== null,
    "one verdict in force, with its undo");
  await page.screenshot({ path: join(SHOTS, "anomaly-verdict.png"), fullPage: true });
  await logout(page);

  // 5. A viewer cannot: no button, and a forged POST with their own CSRF token gets 403.
  const id2 = "browser2-" + Date.now();
  await ingest(id2, "db-1", "high");
  await login(page, env("VIEWER_USER"), env("VIEWER_PASS"));
  await page.goto(BASE + "/anomalies/" + encodeURIComponent(id2));
  check((await page.$("#ack")) === null, "viewer sees no acknowledge button");
  check((await page.$("#verdict-benign")) === null, "viewer sees no verdict buttons");
  const code = await page.evaluate(async (id) => {
    const csrf = document.querySelector("meta[name=csrf-token]").content;
    const r = await fetch("/anomalies/" + encodeURIComponent(id) + "/ack", {
      method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "csrf=" + encodeURIComponent(csrf),
    });
    return r.status;
  }, id2);
  check(code === 403, "viewer acknowledge refused, got " + code);
  const api = await page.evaluate(async (id) => (await fetch("/api/anomalies/" + encodeURIComponent(id))).json(), id2);
  check(api.acked_by === null, "still open after the viewer's attempt");
  await page.goto(BASE + "/hosts");
  await page.screenshot({ path: join(SHOTS, "hosts.png"), fullPage: true });

  // 6. An agent's incident comes first on the home page; its page lists the steps in order,
  // each linking to its anomaly.
  const incId = "db-1-inc-" + Date.now();
  const t0 = Date.now() * 1e6 - 60e9;
  const stepOf = (n, anomaly_id, tactic, detection) => ({
    anomaly_id, time_ns: t0 + n * 1e9, tactic, detections: [detection], score: 45, level: "medium",
    summary: detection + " <i>step</i> " + n, exe: "/tmp/.x",
    factors: [{ detection, reason: detection + " <i>step</i> " + n, weight: 45, evidence: ["e" + n] }],
  });
  const incident = {
    id: incId, host: "db-1", principal: { uid: 1001, user: "mallory", session: 44 }, scope: "session 44",
    first_ns: t0 + 1e9, last_ns: t0 + 2e9, score: 60, level: "high",
    tactics: ["execution", "persistence"], story: "execution -> persistence",
    steps: [stepOf(1, id2, "execution", "exec_from_tmp"), stepOf(2, "db-1-missing", "persistence", "persistence")],
    step_count: 2,
  };
  const ri = await fetch(BASE + "/api/ingest", {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer " + keyFor("db-1") },
    body: JSON.stringify({ batch_id: "browser-inc-" + incId, incidents: [incident] }),
  });
  check(ri.ok && (await ri.json()).incidents.stored[0] === incId, "incident accepted");
  await page.goto(BASE + "/");
  const row = await page.waitForSelector(`#incidents tr[data-incident="${incId}"]`);
  const feedBox = await (await page.$("#feed")).boundingBox();
  check((await row.boundingBox()).y < feedBox.y, "incidents above the anomaly feed");
  check((await row.textContent()).includes("execution -> persistence"), "story in the row");
  await page.screenshot({ path: join(SHOTS, "home-incidents.png"), fullPage: true });
  await Promise.all([page.waitForNavigation(), page.click(`#incidents tr[data-incident="${incId}"] td.reason a`)]);
  check((await page.textContent("h1")).includes("execution -> persistence"), "incident page");
  const links = await page.$$eval("table.steps a[href^='/anomalies/']", (as) => as.map((a) => a.getAttribute("href")));
  check(links.length === 1 && links[0] === "/anomalies/" + encodeURIComponent(id2), "step 1 links its anomaly: " + links);
  check((await page.textContent("table.steps")).includes("not received"), "the missing step's anomaly is said");
  check((await page.$("table.steps i")) === null, "agent text is not markup");
  await page.screenshot({ path: join(SHOTS, "incident.png"), fullPage: true });
  check(errors.length === 0, "no page errors: " + errors.join("; "));
  console.log("browser e2e: ok");
} finally {
  await ctx.close();
}
