// Browser test of the counts chart: submits a job with a counting line and
// a zone (the service takes the same `line`/`zone` parameters as `analyze`),
// waits for it, opens its run and checks that the chart draws one series
// per line direction and zone over the run's intervals, matching
// GET /api/v1/runs/{id}/counts.
// Env: BASE_URL (server), TOKEN (optional), SHOT (screenshot path).
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const base = process.env.BASE_URL ?? "http://127.0.0.1:8080";
const token = process.env.TOKEN ?? "";
const shot = process.env.SHOT ?? "dashboard-counts.png";
const auth = token ? { Authorization: `Bearer ${token}` } : {};
const fail = (msg) => {
  throw new Error(msg);
};

const profile = mkdtempSync(join(tmpdir(), "peregrine-chromium-"));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1400, height: 900 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const videos = await (await fetch(`${base}/api/v1/videos`, { headers: auth })).json();
  const video = videos.find((v) => v.name.includes("traffic_highway_1280x720"));
  if (!video) fail("traffic_highway_1280x720.mp4 is not in the media root");
  const params = {
    end: 4,
    interval: 1,
    no_cache: true,
    line: ["road=250,300,1000,300"],
    zone: ["near=200,720;600,250;760,250;1250,720"],
  };
  const r = await fetch(`${base}/api/v1/jobs`, {
    method: "POST",
    headers: { ...auth, "Content-Type": "application/json" },
    body: JSON.stringify({ video: video.path, params, priority: 0 }),
  });
  if (!r.ok) fail(`submit: ${r.status} ${await r.text()}`);
  const { id } = await r.json();
  let job;
  for (let i = 0; i < 600; i++) {
    job = await (await fetch(`${base}/api/v1/jobs/${id}`, { headers: auth })).json();
    if (["done", "failed", "cancelled"].includes(job.state)) break;
    await new Promise((res) => setTimeout(res, 200));
  }
  if (job.state !== "done") fail(`job ${id}: ${job.state} ${job.error ?? ""}`);
  const run = job.run_id;
  const counts = await (await fetch(`${base}/api/v1/runs/${run}/counts`, { headers: auth })).json();
  if (counts.lines[0].name !== "road" || counts.intervals.length !== 4) fail(`counts: ${JSON.stringify(counts).slice(0, 300)}`);

  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(base + "/");
  if (token) await page.fill("header .token input", token);
  await page.goto(`${base}/#/runs/${run}?tab=counts`);
  await page.waitForSelector("[data-testid=counts-chart]", { timeout: 20_000 });
  const series = await page.$$eval("[data-testid=counts-chart] g[data-series]", (gs) =>
    gs.map((g) => ({ name: g.dataset.series, points: g.querySelectorAll("circle").length })),
  );
  const names = series.map((s) => s.name).join(",");
  if (names !== "road in,road out,near mean occupancy") fail(`series: ${names}`);
  if (series.some((s) => s.points !== counts.intervals.length)) fail(`points: ${JSON.stringify(series)}`);
  // The chart's tooltips carry the API's numbers.
  const outs = await page.$$eval("[data-testid=counts-chart] g[data-series='road out'] circle title", (ts) =>
    ts.map((t) => Number(t.textContent.split(": ")[1].split(" ")[0])),
  );
  const want = counts.intervals.map((iv) => iv.lines[0].out);
  if (JSON.stringify(outs) !== JSON.stringify(want)) fail(`road out ${outs} != ${want}`);
  const totals = await page.textContent("[data-testid=counts] table");
  if (!totals.includes(`out ${counts.lines[0].out}`)) fail(`totals: ${totals}`);
  if (errors.length) fail(`page errors: ${errors.join("; ")}`);
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`counts-chart: run ${run}, ${counts.intervals.length} intervals, road out ${want.join("/")}`);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
