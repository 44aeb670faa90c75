// Two runs of the same video compared. Env: BASE_URL, RUN_A, RUN_B, SHOTS.
// Picked on the runs list; the comparison shows both runs, the frames where
// they disagree most first; a click seeks both (overlaid: the frame's boxes
// of A and B drawn; side by side: both players at the frame). Last, run B
// is deleted from the runs list (after a confirmation).
import { readFileSync } from "node:fs";
import { base, fail, overlay, shots, token, waitFrame, withBrowser } from "./lib.mjs";

const runA = Number(process.env.RUN_A);
const runB = Number(process.env.RUN_B);
const gt = process.env.GT;
if (!runA || !runB || !gt) fail("RUN_A, RUN_B and GT are required");

// B evaluated through the API (A was from the dashboard by workbench-eval).
const form = new FormData();
form.set("format", "mot");
form.set("force", "true");
form.set("gt", new Blob([readFileSync(gt)]), "gt.txt");
const made = await fetch(`${base}/api/v1/runs/${runB}/evals`, {
  method: "POST",
  body: form,
  headers: token ? { Authorization: `Bearer ${token}` } : {},
});
if (made.status !== 201) fail(`evaluating run ${runB}: ${made.status} ${await made.text()}`);

await withBrowser(async (page) => {
  await page.goto(`${base}/#/runs`);
  await page.waitForSelector(`tr[data-run="${runA}"]`);
  await page.check(`tr[data-run="${runA}"] input[type=checkbox]`);
  await page.check(`tr[data-run="${runB}"] input[type=checkbox]`);
  await page.click("[data-testid=compare-go]");
  await page.waitForSelector("[data-testid=compare]");
  for (const l of ["A", "B"]) await page.waitForSelector(`[data-testid=run-card-${l}]`);
  const cards = await page.$$eval(".run-card a", (as) => as.map((a) => a.textContent));
  if (!cards.includes(`Run ${runA}`) || !cards.includes(`Run ${runB}`)) fail(`run cards: ${cards}`);
  await page.waitForSelector("[data-testid=disagreements] tbody tr", { timeout: 30_000 });
  const rows = await page.$$eval("[data-testid=disagreements] tbody tr", (rs) =>
    rs.map((r) => {
      const c = [...r.children].map((x) => x.textContent);
      return { frame: Number(r.dataset.frame), dis: Number(c[2]), a: Number(c[3]), b: Number(c[4]) };
    }),
  );
  for (let i = 1; i < rows.length; i++) if (rows[i].dis > rows[i - 1].dis) fail(`not worst first at row ${i}`);
  // Metrics side by side: both columns filled.
  await page.waitForSelector("[data-testid=metrics-compare] tr[data-metric=MOTA]");
  const mota = await page.$$eval("[data-testid=metrics-compare] tr[data-metric=MOTA] td", (t) => t.map((x) => x.textContent));
  if (!/%$/.test(mota[1]) || !/%$/.test(mota[2])) fail(`MOTA side by side: ${mota}`);
  console.log(`compare: MOTA A ${mota[1]}, B ${mota[2]}`);
  const top = rows[0];
  if (!(top.dis > 0)) fail("no disagreeing frame listed");
  await page.waitForFunction(() => document.querySelector("[data-testid=player] video")?.readyState >= 2, null, { timeout: 30_000 });
  await page.click(`[data-testid=disagreements] tr[data-frame="${top.frame}"]`);
  await waitFrame(page, top.frame);
  await page.waitForFunction((n) => Number(document.querySelector("[data-testid=overlay]").dataset.drawn) === n, top.a + top.b);
  console.log(`compare: ${rows.length} frames listed, worst frame ${top.frame} (${top.dis}); overlay draws A ${top.a} + B ${top.b}`);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: `${shots}/workbench-compare.png` });

  await page.click(".seg.buttons button:has-text('side by side')");
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=overlay]").length === 2);
  await page.waitForFunction(
    () => [...document.querySelectorAll("[data-testid=player] video")].every((v) => v.readyState >= 2),
    null,
    { timeout: 30_000 },
  );
  const second = rows[Math.min(1, rows.length - 1)];
  await page.click(`[data-testid=disagreements] tr[data-frame="${second.frame}"]`);
  await page.waitForFunction(
    (f) => [...document.querySelectorAll("[data-testid=overlay]")].every((c) => Number(c.dataset.frame) === f && c.dataset.loaded === "true"),
    second.frame,
  );
  const drawn = await page.$$eval("[data-testid=overlay]", (cs) => cs.map((c) => Number(c.dataset.drawn)));
  if (drawn[0] !== second.a || drawn[1] !== second.b) fail(`side by side at ${second.frame}: drawn ${drawn}, expected ${second.a}, ${second.b}`);
  const o = await overlay(page);
  console.log(`compare: side by side, both players at frame ${second.frame} (A ${drawn[0]}, B ${drawn[1]} boxes; t ${o.currentTime.toFixed(2)})`);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: `${shots}/workbench-compare-side.png` });

  // Delete run B from the list, confirming first; cancel keeps it.
  await page.goto(`${base}/#/runs`);
  await page.click(`[data-testid=delete-${runB}]`);
  await page.waitForSelector("[data-testid=confirm-delete]");
  await page.screenshot({ path: `${shots}/workbench-runs-delete.png` });
  await page.click("[data-testid=confirm-delete] button:has-text('Cancel')");
  if (!(await page.$(`tr[data-run="${runB}"]`))) fail("cancel deleted the run");
  await page.click(`[data-testid=delete-${runB}]`);
  await page.click("[data-testid=confirm-delete] button.danger");
  await page.waitForSelector(`tr[data-run="${runB}"]`, { state: "detached", timeout: 15_000 });
  const gone = await fetch(`${base}/api/v1/runs/${runB}`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  if (gone.status !== 404) fail(`deleted run ${runB} answers ${gone.status}`);
  console.log(`compare: run ${runB} deleted from the list after confirmation (GET answers 404)`);
});
console.log("compare: ok");
