// A smart-cut assembly (copied GOPs + re-encoded partial GOPs with in-band
// parameter sets), or a smart render of mixed sources (copied shots and
// shots encoded to the target format, switching parameter sets), must play
// in a real browser: Debian's chromium loads it, reports the expected
// duration and decodes every frame to the end, with no media error; then
// it seeks to every switch and shows a frame there.
// Env: VIDEO (absolute path), FRAMES (expected frame count), DURATION (s),
// SWITCHES (optional, comma-separated times in s where the format switches).
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";

const video = process.env.VIDEO;
const frames = Number(process.env.FRAMES);
const duration = Number(process.env.DURATION);
if (!video || !frames || !duration) throw new Error("VIDEO, FRAMES and DURATION are required");
const switches = (process.env.SWITCHES ?? "").split(",").filter((t) => t).map(Number);

const profile = mkdtempSync(join(tmpdir(), "peregrine-chromium-"));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--autoplay-policy=no-user-gesture-required", "--disable-background-networking",
  ],
});
try {
  const page = await browser.newPage();
  // A file:// page may play media from its own folder.
  await page.goto("file://" + dirname(video) + "/");
  const r = await page.evaluate(async ({ src, switches }) => {
    const v = document.createElement("video");
    v.muted = true;
    v.src = src;
    document.body.appendChild(v);
    const failed = () => new Error(`media error ${v.error?.code}: ${v.error?.message}`);
    await new Promise((ok, bad) => {
      v.onloadeddata = ok;
      v.onerror = () => bad(failed());
    });
    const loaded = v.duration;
    v.playbackRate = 4;
    await v.play();
    await new Promise((ok, bad) => {
      v.onended = ok;
      v.onerror = () => bad(failed());
      setTimeout(() => bad(new Error(`stalled at ${v.currentTime} s`)), 60_000);
    });
    const q = v.getVideoPlaybackQuality();
    const decoded = q.totalVideoFrames;
    const end = v.currentTime;
    // Seeking just past each switch decodes from the keyframe there.
    const shown = [];
    for (const t of switches) {
      await new Promise((ok, bad) => {
        v.onseeked = ok;
        v.onerror = () => bad(failed());
        setTimeout(() => bad(new Error(`seek to ${t} s stalled`)), 10_000);
        v.currentTime = t + 0.02;
      });
      await Promise.race([
        new Promise((ok) => v.requestVideoFrameCallback(ok)),
        new Promise((ok) => setTimeout(ok, 2_000)),
      ]);
      shown.push(v.readyState >= 2);
    }
    return { loaded, end, decoded, shown, error: v.error };
  }, { src: basename(video), switches });
  console.log(`assembled-playback: ${JSON.stringify(r)}`);
  if (r.error) throw new Error(`media error ${JSON.stringify(r.error)}`);
  if (Math.abs(r.loaded - duration) > 0.05) throw new Error(`duration ${r.loaded} s, expected ${duration} s`);
  if (Math.abs(r.end - duration) > 0.05) throw new Error(`ended at ${r.end} s, expected ${duration} s`);
  if (r.decoded !== frames) throw new Error(`${r.decoded} frames decoded, expected ${frames}`);
  if (r.shown.some((ok) => !ok)) throw new Error(`no frame after a switch: ${JSON.stringify(r.shown)}`);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
