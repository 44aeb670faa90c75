// A 100k-detection run stays smooth. Env: BASE_URL, SEED_RUN (a run with
// ~100k detections, ~110 per frame), SHOTS, MAX_LONGTASK_MS (default 50).
// The run page plays its video with the overlay (every box of every frame
// drawn) while the virtual detection table is scrolled to its end, loading
// all 100k rows page by page. Long tasks (PerformanceObserver 'longtask')
// and animation-frame times are recorded; prints one JSON line with them.
// Fails on an overlay more than one frame off the video's time and, only
// when MAX_LONGTASK_MS is set (the benchmark, BENCHMARKS.md; tests never
// assert timings), on any long task over it, in each of PERF_ATTEMPTS
// (default 2) measurements (a shared machine can deschedule the browser
// mid-task).
import { base, fail, overlay, percentile, shots, withBrowser } from "./lib.mjs";

const seedRun = Number(process.env.SEED_RUN);
const limit = process.env.MAX_LONGTASK_MS ? Number(process.env.MAX_LONGTASK_MS) : null;
if (!seedRun) fail("SEED_RUN is required");

/// One measurement on a freshly loaded run page. Returns the numbers and
/// the timing problems (long tasks, sync); anything else fails at once.
async function measure(page, attempt) {
  await page.goto(`${base}/#/runs/${seedRun}?attempt=${attempt}`);
  await page.reload();
  await page.waitForFunction(() => document.querySelector("[data-testid=player] video")?.readyState >= 2, null, { timeout: 30_000 });
  await page.waitForFunction(() => document.querySelector("[data-testid=overlay]")?.dataset.loaded === "true", null, { timeout: 30_000 });
  await page.waitForTimeout(500);
  // Measure from here: loading the page is not playing it.
  const start = await page.evaluate(() => {
    window.__frames = [];
    let last = performance.now();
    const tick = (t) => {
      window.__frames.push(t - last);
      last = t;
      if (!window.__stop) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    return performance.now();
  });
  if (process.env.PERF_MODE !== "scroll") await page.click("[data-testid=play]");
  const table = await page.waitForSelector("[data-testid=detections]");
  const t0 = Date.now();
  let samples = 0;
  let maxDiff = 0;
  let drawnMin = Infinity;
  const fps = 30;
  while (Date.now() - t0 < 60_000) {
    const complete = await table.getAttribute("data-complete");
    // Scroll down to the last loaded row (the next page loads from there).
    if (process.env.PERF_MODE !== "play") await table.evaluate((el) => (el.scrollTop = el.scrollHeight));
    const o = await overlay(page);
    if (!o.paused && o.loaded && o.currentTime > 0) {
      samples++;
      maxDiff = Math.max(maxDiff, Math.abs(o.frame - Math.floor(o.currentTime * fps + 0.1)));
      drawnMin = Math.min(drawnMin, o.drawn);
    }
    if (complete === "true" && Date.now() - t0 > 8000) break;
    await page.waitForTimeout(60);
  }
  await table.evaluate((el) => (el.scrollTop = el.scrollHeight));
  await page.waitForTimeout(300);
  const r = await page.evaluate((s) => {
    window.__stop = true;
    const v = document.querySelector("[data-testid=player] video");
    return { long: window.__long.filter((e) => e.start >= s), frames: window.__frames, t: v.currentTime, paused: v.paused };
  }, start);
  const loaded = Number(await table.getAttribute("data-loaded"));
  const complete = await table.getAttribute("data-complete");
  const lastIndex = await page.$$eval(".dets-row", (rows) => Math.max(...rows.map((x) => Number(x.getAttribute("data-index")))));
  const rowsInDom = await page.$$eval(".dets-row", (rows) => rows.length);
  const frames = r.frames.slice(1);
  const out = {
    seconds: (Date.now() - t0) / 1000,
    rows_loaded: loaded,
    video_time: Number(r.t.toFixed(2)),
    overlay_samples: samples,
    overlay_max_frame_diff: maxDiff,
    boxes_per_frame_min: drawnMin,
    longtasks: r.long.length,
    longtask_max_ms: r.long.length ? Math.round(Math.max(...r.long.map((e) => e.ms))) : 0,
    frame_ms: {
      count: frames.length,
      p50: +percentile(frames, 50).toFixed(1),
      p95: +percentile(frames, 95).toFixed(1),
      p99: +percentile(frames, 99).toFixed(1),
      max: +Math.max(...frames).toFixed(1),
    },
  };
  console.log(`perf: ${JSON.stringify(out)}`);
  out.problems = [];
  await page.screenshot({ path: `${shots}/workbench-100k.png` });
  if (complete !== "true" || loaded < 100_000) fail(`table loaded ${loaded} rows (complete ${complete})`);
  if (lastIndex !== loaded - 1) fail(`last row not shown: ${lastIndex} of ${loaded}`);
  if (rowsInDom > 500) fail(`table is not virtualized: ${rowsInDom} rows in the DOM`);
  if (samples < 20) fail(`only ${samples} overlay samples while playing`);
  if (drawnMin < 100) fail(`a frame drew only ${drawnMin} boxes`);
  if (maxDiff > 1) out.problems.push(`overlay out of sync by ${maxDiff} frames`);
  const over = limit === null ? [] : r.long.filter((e) => e.ms > limit);
  if (over.length) out.problems.push(`${over.length} long tasks over ${limit} ms (max ${out.longtask_max_ms} ms)`);
  return out;
}

// On a machine shared with other work, a task descheduled mid-way reads as
// long: a second measurement is taken before failing (both are printed).
const attempts = Number(process.env.PERF_ATTEMPTS ?? 2);
await withBrowser(async (page) => {
  await page.addInitScript(() => {
    window.__long = [];
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) window.__long.push({ start: e.startTime, ms: e.duration });
    }).observe({ type: "longtask", buffered: true });
  });
  let problems = [];
  for (let i = 1; i <= attempts; i++) {
    const out = await measure(page, i);
    problems = out.problems;
    if (!problems.length) break;
    console.log(`perf: attempt ${i}: ${problems.join("; ")}`);
  }
  if (problems.length) fail(problems.join("; "));
});
console.log("perf: ok");
