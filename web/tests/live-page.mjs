// Browser test of the Live page: starts a stream through the API (a video
// file in the media root played as a camera), opens #/live and waits until
// its tile shows it live with frames analysed (counters over SSE) and the
// latest annotated frame as an image; screenshot; then stops it with the
// tile's button and checks that the stream is gone and its run finalised.
// Env: BASE_URL (server), TOKEN (optional), SHOT (screenshot path).
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const base = process.env.BASE_URL ?? "http://127.0.0.1:8080";
const token = process.env.TOKEN ?? "";
const shot = process.env.SHOT ?? "dashboard-live.png";
const auth = token ? { Authorization: `Bearer ${token}` } : {};
const fail = (msg) => {
  throw new Error(msg);
};
const name = `cam-${Date.now() % 100000}`;

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
  const r = await fetch(`${base}/api/v1/streams`, {
    method: "POST",
    headers: { ...auth, "Content-Type": "application/json" },
    body: JSON.stringify({ name, source: "traffic_intersection_cctv_640x480.mp4", fps: 5 }),
  });
  if (r.status !== 201) fail(`create: ${r.status} ${await r.text()}`);

  const page = browser.pages()[0] ?? (await browser.newPage());
  if (token) await page.addInitScript((t) => localStorage.setItem("peregrine-token", t), token);
  await page.goto(`${base}/#/live`);
  const tile = page.locator(`.tile[data-stream="${name}"]`);
  await tile.waitFor({ timeout: 30_000 });
  // Counters move while the page is open: SSE updates, no reload.
  await page.waitForFunction(
    (n) => {
      const t = document.querySelector(`.tile[data-stream="${n}"]`);
      const frames = Number(t?.querySelector(".frames-analysed")?.textContent ?? 0);
      return t?.querySelector(".state")?.textContent === "live" && frames >= 5;
    },
    name,
    { timeout: 60_000 },
  );
  await page.waitForFunction(
    (n) => {
      const img = document.querySelector(`.tile[data-stream="${n}"] img`);
      return img && img.complete && img.naturalWidth === 640 && img.naturalHeight === 480;
    },
    name,
    { timeout: 30_000 },
  );
  const first = Number(await tile.locator(".frames-analysed").textContent());
  await page.waitForFunction(
    ([n, f]) =>
      Number(document.querySelector(`.tile[data-stream="${n}"] .frames-analysed`)?.textContent ?? 0) > f,
    [name, first],
    { timeout: 30_000 },
  );
  await page.screenshot({ path: shot });
  const view = await (await fetch(`${base}/api/v1/streams/${name}`, { headers: auth })).json();
  const runId = view.run_id;
  if (!runId) fail(`no run: ${JSON.stringify(view)}`);

  await tile.locator("button", { hasText: "Stop" }).click();
  await tile.waitFor({ state: "detached", timeout: 30_000 });
  const gone = await fetch(`${base}/api/v1/streams/${name}`, { headers: auth });
  if (gone.status !== 404) fail(`stream still there: ${gone.status}`);
  const run = await (await fetch(`${base}/api/v1/runs/${runId}`, { headers: auth })).json();
  if (!["complete", "partial"].includes(run.status) || !(run.frames > 0)) {
    fail(`run ${runId} not finalised: ${JSON.stringify(run)}`);
  }
  console.log(`live page: ${name} analysed, run ${runId} ${run.status} with ${run.frames} frames`);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
