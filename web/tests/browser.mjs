// Jobs in the dashboard: Debian's chromium driven by playwright-core.
// Env: BASE_URL (server), TOKEN (optional), UPLOAD (a video file), SHOTS.
// - the job form's model picker lists GET /api/v1/models;
// - a job on a media-root video with a picked model runs to done, and its
//   page shows the per-stage timing chart and paths relative to the media
//   root (no server-side absolute path);
// - an upload shows its progress bar (the upload throttled so that it is
//   seen moving) and runs as a job under the file's original name.
import { statSync } from "node:fs";
import { basename } from "node:path";
import { apiGet, base, fail, shots, withBrowser } from "./lib.mjs";

const upload = process.env.UPLOAD;
if (!upload) fail("UPLOAD is required");

await withBrowser(async (page, browser) => {
  await page.goto(base + "/");
  await page.waitForSelector("select[name=video] option", { state: "attached" });
  // Models: the picker's options are the API's.
  const models = await apiGet("/api/v1/models");
  await page.waitForFunction((n) => document.querySelectorAll("select[name=model] option").length === n + 1, models.length);
  const opts = await page.$$eval("select[name=model] option", (os) => os.map((o) => o.value).filter(Boolean));
  if (opts.join() !== models.map((m) => m.path).join()) fail(`model picker ${opts} vs API ${models.map((m) => m.path)}`);
  for (const m of models) if (m.path.startsWith("/")) fail(`model path is absolute: ${m.path}`);
  const yolox = models.find((m) => m.path.includes("yolox_nano")) ?? models[0];
  const values = await page.$$eval("select[name=video] option", (os) => os.map((o) => o.value));
  const value = values.find((v) => v.includes("gait_sideon_whitewall")) ?? values[0];
  await page.selectOption("select[name=video]", value);
  await page.selectOption("select[name=model]", yolox.path);
  await page.fill("input[name=params]", '{"end": 1, "no_cache": true}');
  await page.click("form.submit button[type=submit]");
  await page.waitForSelector(".msg:has-text('job #')", { timeout: 10_000 });
  const jobId = (await page.textContent(".msg")).match(/#(\d+)/)[1];
  await page.waitForSelector(`tr[data-job="${jobId}"][data-state="done"]`, { timeout: 120_000 });
  const shown = await page.textContent(`tr[data-job="${jobId}"] td:nth-child(2)`);
  if (shown.startsWith("/")) fail(`job list shows an absolute path: ${shown}`);
  console.log(`browser: job ${jobId} done (${shown}, ${yolox.path})`);

  await page.click(`tr[data-job="${jobId}"] a[href="#/jobs/${jobId}"]`);
  await page.waitForSelector("svg.chart rect.mean", { state: "attached", timeout: 10_000 });
  const stages = await page.$$eval("svg.chart rect.mean", (r) => r.length);
  if (stages < 4) fail(`timing chart shows ${stages} stages`);
  const dd = await page.$$eval("dl dd", (d) => d.map((x) => x.textContent));
  if (dd.some((t) => t.startsWith("/"))) fail(`job page shows an absolute path: ${dd}`);
  await page.screenshot({ path: `${shots}/workbench-job.png` });

  // Upload, throttled to 0.5 MB/s so that the progress bar is seen.
  await page.goto(base + "/#/");
  const cdp = await browser.newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 512 * 1024,
  });
  await page.check("input[name=source][type=radio] >> nth=1");
  await page.setInputFiles("input[name=file]", upload);
  await page.fill("input[name=params]", '{"end": 1}');
  await page.click("form.submit button[type=submit]");
  const seen = new Set();
  const t0 = Date.now();
  let shot = false;
  while (Date.now() - t0 < 60_000) {
    const pct = await page.$eval("[data-testid=upload-progress]", (e) => Number(e.dataset.pct)).catch(() => null);
    if (pct === null && seen.size) break;
    if (pct !== null) {
      seen.add(pct);
      if (!shot && pct >= 30 && pct < 90) {
        await page.screenshot({ path: `${shots}/workbench-upload.png` });
        shot = true;
      }
    }
    await page.waitForTimeout(50);
  }
  await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  const steps = [...seen].filter((p) => p > 0 && p < 100);
  console.log(`browser: upload of ${(statSync(upload).size / 1e6).toFixed(1)} MB showed ${steps.length} progress values between 0 and 100`);
  if (steps.length < 3) fail(`upload progress not seen moving: ${[...seen]}`);
  await page.waitForSelector(".msg:has-text('job #')", { timeout: 30_000 });
  const up = (await page.textContent(".msg")).match(/#(\d+)/)[1];
  const job = await apiGet(`/api/v1/jobs/${up}`);
  if (job.video_name !== basename(upload)) fail(`uploaded job named ${job.video_name}, expected ${basename(upload)}`);
  if (job.video.startsWith("/")) fail(`uploaded job shows an absolute path: ${job.video}`);
  await page.waitForSelector(`tr[data-job="${up}"] td:nth-child(2):has-text("${basename(upload)}")`);
  console.log(`browser: uploaded job ${up} listed as ${job.video_name} (${job.video})`);
});
console.log("browser: ok");
