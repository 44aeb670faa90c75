// Shared by the workbench browser tests: Debian's chromium through
// playwright-core with a fresh profile, a page that records errors, and the
// API called from Node with the same token.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const base = process.env.BASE_URL ?? "http://127.0.0.1:8080";
export const token = process.env.TOKEN ?? "";
export const shots = process.env.SHOTS ?? "../target-web";

export function fail(msg) {
  throw new Error(msg);
}

export async function apiGet(path) {
  const r = await fetch(base + path, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  if (!r.ok) fail(`${path}: ${r.status} ${await r.text()}`);
  return r.json();
}

/// Runs `body(page, browser)` in a fresh chromium; closes it after.
export async function withBrowser(body, { width = 1440, height = 960 } = {}) {
  const profile = mkdtempSync(join(tmpdir(), "peregrine-chromium-"));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    viewport: { width, height },
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--autoplay-policy=no-user-gesture-required", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-renderer-backgrounding",
      "--disable-background-timer-throttling",
    ],
  });
  const page = browser.pages()[0] ?? (await browser.newPage());
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && !/Failed to load resource/.test(m.text()) && errors.push(m.text()));
  try {
    if (token) {
      await page.goto(base + "/");
      await page.evaluate((t) => localStorage.setItem("peregrine-token", t), token);
    }
    await body(page, browser);
    if (errors.length) fail(`page errors: ${errors.join("; ")}`);
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

/// The overlay's state: the frame drawn, boxes drawn, and the video's time,
/// read together in an animation frame (after that frame's video-frame
/// callbacks: what is painted).
export async function overlay(page, sel = "[data-testid=overlay]") {
  return page.$eval(sel, (c) => new Promise((done) => requestAnimationFrame(() => {
    const v = c.parentElement.querySelector("video");
    done({
      frame: Number(c.dataset.frame),
      drawn: Number(c.dataset.drawn),
      loaded: c.dataset.loaded === "true",
      mediaTime: Number(c.dataset.mediaTime),
      currentTime: v ? v.currentTime : NaN,
      paused: v ? v.paused : true,
      readyState: v ? v.readyState : 0,
    });
  })));
}

/// Waits until the overlay shows `frame` with its data loaded.
export async function waitFrame(page, frame, sel = "[data-testid=overlay]", timeout = 20_000) {
  await page.waitForFunction(
    ([s, f]) => {
      const c = document.querySelector(s);
      return c && Number(c.dataset.frame) === f && c.dataset.loaded === "true";
    },
    [sel, frame],
    { timeout },
  );
}

/// Seeks the page's player to `frame` with the scrub bar.
export async function scrubTo(page, frame) {
  await page.$eval(
    "[data-testid=scrub]",
    (el, f) => {
      const set = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set;
      set.call(el, String(f));
      el.dispatchEvent(new Event("input", { bubbles: true }));
    },
    frame,
  );
}

export function percentile(xs, p) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
