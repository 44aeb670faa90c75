// Browser test: Debian's chromium driven by playwright-core.
// Env: BASE_URL (server), SEED_RUN (run id with ~100k detections),
// TOKEN (optional), SHOT (screenshot path).
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const base = process.env.BASE_URL ?? "http://127.0.0.1:8080";
const seedRun = process.env.SEED_RUN;
const token = process.env.TOKEN ?? "";
const shot = process.env.SHOT ?? "dashboard-100k.png";
if (!seedRun) throw new Error("SEED_RUN is required");

const profile = mkdtempSync(join(tmpdir(), "peregrine-chromium-"));
// A fresh profile each run (playwright passes it as --user-data-dir).
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1400, height: 900 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const fail = (msg) => {
  throw new Error(msg);
};
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(base + "/");
  if (token) {
    await page.fill("header .token input", token);
  }
  // Submit a short job from the form and wait for it to finish.
  await page.waitForSelector("select[name=video] option", { state: "attached" });
  const values = await page.$$eval("select[name=video] option", (os) => os.map((o) => o.value));
  const value = values.find((v) => v.includes("gait_sideon_whitewall")) ?? values[0];
  await page.selectOption("select[name=video]", value);
  await page.fill("input[name=params]", '{"end": 1, "no_cache": true}');
  await page.click("form.submit button[type=submit]");
  await page.waitForSelector(".msg:has-text('queued job')", { timeout: 10_000 });
  const msg = await page.textContent(".msg");
  const jobId = msg.match(/#(\d+)/)[1];
  await page.waitForSelector(`tr[data-job="${jobId}"][data-state="done"]`, { timeout: 120_000 });
  console.log(`browser: job ${jobId} done`);

  // Job detail: the per-stage timing chart.
  await page.click(`tr[data-job="${jobId}"] a[href="#/jobs/${jobId}"]`);
  await page.waitForSelector("svg.chart rect.mean", { state: "attached", timeout: 10_000 });
  const stages = await page.$$eval("svg.chart rect.mean", (r) => r.length);
  if (stages < 4) fail(`timing chart shows ${stages} stages`);
  await page.screenshot({ path: shot.replace(/\.png$/, "-job.png") });

  // Scroll the seeded run to the end.
  const t0 = Date.now();
  await page.goto(`${base}/#/runs/${seedRun}`);
  const table = await page.waitForSelector("[data-testid=detections]");
  for (let i = 0; i < 2000; i++) {
    const complete = await table.getAttribute("data-complete");
    await table.evaluate((el) => { el.scrollTop = el.scrollHeight; });
    if (complete === "true") break;
    await page.waitForTimeout(50);
  }
  if ((await table.getAttribute("data-complete")) !== "true") fail("detections never finished loading");
  const loaded = Number(await table.getAttribute("data-loaded"));
  await table.evaluate((el) => { el.scrollTop = el.scrollHeight; });
  await page.waitForTimeout(200);
  const lastIndex = await page.$$eval(".dets-row", (rows) =>
    Math.max(...rows.map((r) => Number(r.getAttribute("data-index")))),
  );
  const rowsInDom = await page.$$eval(".dets-row", (rows) => rows.length);
  console.log(`browser: ${loaded} rows loaded, last visible index ${lastIndex}, ${rowsInDom} rows in the DOM, ${Date.now() - t0} ms`);
  if (loaded < 100_000) fail(`expected at least 100000 rows, got ${loaded}`);
  if (lastIndex !== loaded - 1) fail(`last row not shown: ${lastIndex} of ${loaded}`);
  if (rowsInDom > 500) fail(`table is not virtualized: ${rowsInDom} rows in the DOM`);
  const lastText = await page.textContent(`.dets-row[data-index="${loaded - 1}"]`);
  if (lastText.includes("loading")) fail("last row not loaded");
  // The frame viewer draws the seeded run's frame (its video is real).
  const frameImg = await page.waitForSelector('img[alt^="frame "], p.error', { timeout: 30000 });
  if ((await frameImg.evaluate((el) => el.tagName)) !== "IMG") {
    fail(`frame viewer shows an error: ${await frameImg.textContent()}`);
  }
  await page.screenshot({ path: shot, fullPage: false });
  console.log(`browser: screenshot ${shot}`);
  if (errors.length) fail(`page errors: ${errors.join("; ")}`);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
