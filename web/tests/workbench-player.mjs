// The workbench's runs list and player against a real server.
// Env: BASE_URL, RUN_A (a tracked run of a real video), RUN_POSE (a pose
// run), SHOTS (screenshot folder).
// - the runs list shows CLI runs, filters by model, sorts;
// - a run's video plays with the overlay in sync: the overlay's frame and
//   the video's currentTime, sampled together while playing, differ by at
//   most one frame, and the boxes drawn are that frame's stored detections;
// - ←/→ step one frame, space plays;
// - the score / class / track filters change what is drawn (counted from
//   the API's rows), in the overlay and the frame table;
// - opening another run starts at frame 0 (the reported bug).
import { apiGet, base, fail, overlay, scrubTo, shots, waitFrame, withBrowser } from "./lib.mjs";

const runA = Number(process.env.RUN_A);
const runPose = Number(process.env.RUN_POSE);
if (!runA || !runPose) fail("RUN_A and RUN_POSE are required");

async function allDetections(run) {
  const out = [];
  let cursor = null;
  for (;;) {
    const p = await apiGet(`/api/v1/runs/${run}/detections?limit=10000${cursor ? `&cursor=${cursor}` : ""}`);
    out.push(...p.items);
    if (!p.next_cursor) return out;
    cursor = p.next_cursor;
  }
}

const summary = await apiGet(`/api/v1/runs/${runA}`);
const fps = summary.video_fps;
const dets = await allDetections(runA);
const byFrame = new Map();
for (const d of dets) {
  if (!byFrame.has(d.frame)) byFrame.set(d.frame, []);
  byFrame.get(d.frame).push(d);
  // The contract the player relies on: stored t is the presentation time.
  if (Math.abs(d.t - d.frame / fps) > 0.002) fail(`frame ${d.frame}: t ${d.t} is not frame / fps (${fps})`);
}

await withBrowser(async (page) => {
  // Runs list: CLI runs listed; the model filter narrows it.
  await page.goto(`${base}/#/runs`);
  await page.waitForSelector(`tr[data-run="${runA}"]`, { timeout: 15_000 });
  const listed = await page.$$eval("table.runs tbody tr", (rs) => rs.map((r) => Number(r.dataset.run)));
  if (!listed.includes(runPose)) fail(`run ${runPose} not listed: ${listed}`);
  await page.screenshot({ path: `${shots}/workbench-runs.png` });
  await page.fill("input[name=model]", "pose");
  await page.waitForFunction(
    (a) => !document.querySelector(`tr[data-run="${a}"]`) && document.querySelectorAll("table.runs tbody tr").length > 0,
    runA,
  );
  const models = await page.$$eval("table.runs tbody tr td:nth-child(4)", (ts) => ts.map((t) => t.textContent));
  if (!models.every((m) => m.includes("pose"))) fail(`model filter shows ${models}`);
  await page.fill("input[name=model]", "");
  await page.selectOption("select[name=sort]", "started_at");
  await page.waitForFunction(() => {
    const ids = [...document.querySelectorAll("table.runs tbody tr")].map((r) => Number(r.dataset.run));
    return ids.length > 2 && ids.every((v, i) => !i || ids[i - 1] < v);
  });
  console.log(`player: runs list ${listed.length} runs, model filter and sort ok`);

  // The player: open run A from the list.
  await page.click(`tr[data-run="${runA}"] td:nth-child(2) a`);
  await page.waitForFunction(() => {
    const v = document.querySelector("[data-testid=player] video");
    return v && v.readyState >= 2;
  }, null, { timeout: 30_000 });
  await waitFrame(page, 0);
  // Detections, not an evaluation's matches, are checked here.
  if (await page.$("input[name=colour-by-match]")) await page.uncheck("input[name=colour-by-match]");

  // Play and sample the overlay against the video's clock.
  await page.click("[data-testid=play]");
  const samples = [];
  const t0 = Date.now();
  while (Date.now() - t0 < 6000) {
    const o = await overlay(page);
    if (o.paused && o.currentTime > 0) break;
    samples.push(o);
    await page.waitForTimeout(90);
  }
  let maxDiff = 0;
  let checkedBoxes = 0;
  for (const s of samples) {
    if (!(s.currentTime > 0)) continue;
    const expected = Math.floor(s.currentTime * fps + 0.1);
    maxDiff = Math.max(maxDiff, Math.abs(s.frame - expected));
    if (s.loaded) {
      const n = byFrame.get(s.frame)?.length ?? 0;
      if (s.drawn !== n) fail(`frame ${s.frame}: ${s.drawn} boxes drawn, ${n} stored`);
      checkedBoxes++;
    }
  }
  const played = samples.length ? samples[samples.length - 1].currentTime : 0;
  console.log(`player: ${samples.length} samples while playing to ${played.toFixed(2)} s, max |overlay frame - video frame| = ${maxDiff}, boxes checked on ${checkedBoxes}`);
  if (played < 2) fail(`video did not play (currentTime ${played})`);
  if (maxDiff > 1) fail(`overlay out of sync by ${maxDiff} frames`);
  if (checkedBoxes < samples.length / 2) fail(`only ${checkedBoxes} of ${samples.length} samples had their detections loaded`);

  // Keyboard: pause (space), step.
  await page.click("h2");
  await page.keyboard.press(" ");
  await page.waitForFunction(() => document.querySelector("[data-testid=player] video").paused);
  await page.waitForTimeout(300);
  const at = (await overlay(page)).frame;
  await page.keyboard.press("ArrowRight");
  await page.keyboard.press("ArrowRight");
  await page.keyboard.press("ArrowRight");
  await waitFrame(page, at + 3);
  await page.keyboard.press("ArrowLeft");
  await waitFrame(page, at + 2);
  console.log(`player: keyboard stepping ${at} -> ${at + 3} -> ${at + 2}`);

  // Filters, at the frame with the most detections.
  const [busy, busyDets] = [...byFrame.entries()].sort((a, b) => b[1].length - a[1].length)[0];
  await scrubTo(page, busy);
  await waitFrame(page, busy);
  const drawn = async () => (await overlay(page)).drawn;
  const rows = () => page.$eval("[data-testid=frame-list]", (t) => Number(t.dataset.rows));
  if ((await drawn()) !== busyDets.length) fail(`frame ${busy}: ${await drawn()} drawn, ${busyDets.length} stored`);
  await page.screenshot({ path: `${shots}/workbench-player.png` });
  const scores = busyDets.map((d) => d.score).sort((a, b) => a - b);
  const cut = Math.ceil(scores[Math.floor(scores.length / 2)] * 20) / 20;
  await page.$eval(
    "#min-score",
    (el, v) => {
      Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set.call(el, String(v));
      el.dispatchEvent(new Event("input", { bubbles: true }));
    },
    cut,
  );
  const wantScore = busyDets.filter((d) => d.score >= cut).length;
  await page.waitForFunction((n) => Number(document.querySelector("[data-testid=overlay]").dataset.drawn) === n, wantScore);
  await page.waitForFunction((n) => Number(document.querySelector("[data-testid=frame-list]").dataset.rows) === n, wantScore);
  if (wantScore === busyDets.length) fail("score filter chose a threshold that removes nothing");
  console.log(`player: score >= ${cut}: ${busyDets.length} -> ${wantScore} boxes (overlay and table)`);
  await page.$eval("#min-score", (el) => {
    Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set.call(el, "0");
    el.dispatchEvent(new Event("input", { bubbles: true }));
  });
  // A class the frame does not have: nothing drawn; its own class: all.
  const cls = busyDets[0].class;
  await page.click(`.chip[data-class="${cls}"]`);
  const wantCls = busyDets.filter((d) => d.class === cls).length;
  await page.waitForFunction((n) => Number(document.querySelector("[data-testid=overlay]").dataset.drawn) === n, wantCls);
  await page.click(".chip:has-text('all')");
  // Track: one box.
  const tr = busyDets.find((d) => d.track_id != null);
  if (tr) {
    await page.fill("#track", String(tr.track_id));
    await page.waitForFunction(() => Number(document.querySelector("[data-testid=overlay]").dataset.drawn) === 1);
    if ((await rows()) !== 1) fail(`track filter: ${await rows()} table rows`);
    const tl = await page.$eval("[data-testid=timeline] svg", (s) => s.querySelectorAll("rect.tl-bar").length);
    console.log(`player: track ${tr.track_id}: 1 box drawn; timeline shows ${tl} bins`);
    if (!tl) fail("timeline shows no bins for the selected track");
    await page.screenshot({ path: `${shots}/workbench-player-track.png` });
    await page.fill("#track", "");
  }
  await page.waitForFunction((n) => Number(document.querySelector("[data-testid=overlay]").dataset.drawn) === n, busyDets.length);
  console.log(`player: class ${cls}: ${wantCls} boxes; filters cleared: ${busyDets.length}`);

  // The tables: the virtual detection table and the tracks with lifespans.
  await page.waitForSelector("[data-testid=detections] .dets-row");
  await page.evaluate(() => document.querySelector(".tabs-section").scrollIntoView());
  await page.screenshot({ path: `${shots}/workbench-detections.png` });
  await page.click("button[data-tab=tracks]");
  await page.waitForSelector(".tracks-table tbody tr");
  await page.evaluate(() => document.querySelector(".tabs-section").scrollIntoView());
  await page.screenshot({ path: `${shots}/workbench-tracks.png` });

  // The reported bug: frame 71 here, then another run starts at frame 0.
  await scrubTo(page, 71);
  await waitFrame(page, 71);
  await page.evaluate((r) => (location.hash = `#/runs/${r}`), runPose);
  await page.waitForSelector(`.run-page[data-run="${runPose}"]`);
  const readout = await page.textContent("[data-testid=frame-readout]");
  if (!/frame 0 \//.test(readout)) fail(`another run opened at "${readout}"`);
  await waitFrame(page, 0);
  console.log(`player: run ${runPose} opened at "${readout.trim()}"`);
  // Pose: a frame with keypoints drawn.
  const pose = (await apiGet(`/api/v1/runs/${runPose}/detections?limit=200`)).items.find((d) => d.keypoints);
  if (!pose) fail(`run ${runPose} has no keypoints`);
  await scrubTo(page, pose.frame + 10);
  await waitFrame(page, pose.frame + 10);
  await page.waitForTimeout(300);
  await page.screenshot({ path: `${shots}/workbench-pose.png` });
});
console.log("player: ok");
