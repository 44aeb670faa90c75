// Ground truth and errors against a real server. Env: BASE_URL, RUN_A (a
// tracked run of PETS09-S2L1's video), GT (its MOTChallenge gt.txt), SHOTS.
// The run is evaluated from the dashboard's form (upload); the panels show
// the stored metrics; the errors table lists the frames worst first with
// their false positives, as the API's matches count them; a click seeks
// the player, which colours the frame's matches (legend counts = API).
import { apiGet, base, fail, overlay, shots, waitFrame, withBrowser } from "./lib.mjs";

const runA = Number(process.env.RUN_A);
const gt = process.env.GT;
if (!runA || !gt) fail("RUN_A and GT are required");

await withBrowser(async (page) => {
  await page.goto(`${base}/#/runs/${runA}?tab=evaluation`);
  await page.waitForSelector("[data-testid=eval-form]");
  const before = (await apiGet(`/api/v1/runs/${runA}/evals`)).length;
  await page.setInputFiles("input[name=gtfile]", gt);
  await page.selectOption("select[name=format]", "mot");
  // The run analysed the first 124 of the video's 795 frames: the sequence's.
  await page.check("input[name=force]");
  await page.click("[data-testid=eval-form] button[type=submit]");
  await page.waitForSelector(`button[data-tab=evaluation]:has-text("evaluation (${before + 1})")`, { timeout: 60_000 });
  await page.waitForSelector("[data-testid=metric-cards] [data-metric=MOTA]");
  const evals = await apiGet(`/api/v1/runs/${runA}/evals`);
  if (evals.length !== before + 1) fail(`expected ${before + 1} evaluations, got ${evals.length}`);
  const ev = evals[evals.length - 1];
  const cards = await page.$$eval("[data-testid=metric-cards] .card", (cs) =>
    Object.fromEntries(cs.map((c) => [c.dataset.metric, c.querySelector(".card-value").textContent])),
  );
  console.log(`eval: evaluation ${ev.id}: ${JSON.stringify(cards)}`);
  for (const k of ["MOTA", "IDF1", "HOTA", "FP", "FN"]) if (!(k in cards)) fail(`no ${k} panel`);

  // Errors, worst first, with FPs.
  await page.waitForSelector("[data-testid=errors] tbody tr", { timeout: 20_000 });
  const rows = await page.$$eval("[data-testid=errors] tbody tr", (rs) =>
    rs.map((r) => ({ frame: Number(r.dataset.frame), fp: Number(r.dataset.fp), errors: Number(r.children[2].textContent) })),
  );
  for (let i = 1; i < rows.length; i++) if (rows[i].errors > rows[i - 1].errors) fail(`errors not worst first at row ${i}`);
  const withFp = rows.find((r) => r.fp > 0);
  if (!withFp) fail("the errors table lists no false positive");
  const fps = (await apiGet(`/api/v1/evals/${ev.id}/matches?frame_from=${withFp.frame}&frame_to=${withFp.frame}&kind=fp&limit=1000`)).items;
  if (fps.length !== withFp.fp) fail(`frame ${withFp.frame}: table says ${withFp.fp} FP, the API has ${fps.length}`);
  const all = (await apiGet(`/api/v1/evals/${ev.id}/matches?frame_from=${withFp.frame}&frame_to=${withFp.frame}&limit=1000`)).items;
  console.log(`eval: ${rows.length} error frames listed; frame ${withFp.frame} has ${withFp.fp} FP (API: ${fps.length}), ${all.length} matches`);

  // Seek there: the overlay draws the frame's matches in their colours.
  await page.click(`[data-testid=errors] tr[data-frame="${withFp.frame}"]`);
  await waitFrame(page, withFp.frame);
  await page.waitForFunction(
    (n) => Number(document.querySelector("[data-testid=overlay]").dataset.drawn) === n,
    all.length,
  );
  const legend = await page.$$eval("[data-testid=legend] .legend-item", (ls) => ls.map((l) => l.textContent));
  const fpLegend = legend.find((l) => l.startsWith("false positive"));
  if (!fpLegend || Number(fpLegend.replace(/\D+/g, "")) !== withFp.fp) fail(`legend: ${legend}`);
  const o = await overlay(page);
  console.log(`eval: player at frame ${o.frame}, ${o.drawn} matches drawn; legend ${legend.join(" | ")}`);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: `${shots}/workbench-eval-overlay.png` });
  await page.evaluate(() => document.querySelector("[data-testid=evaluation]").scrollIntoView());
  await page.screenshot({ path: `${shots}/workbench-eval.png` });
  await page.screenshot({ path: `${shots}/workbench-eval-full.png`, fullPage: true });
});
console.log("eval: ok");
