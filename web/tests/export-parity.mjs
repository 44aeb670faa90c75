// End-to-end against the real binary: submit a shared video, follow the
// job's SSE stream to the end, page through every detection, and compare
// with `peregrine export RUN --format jsonl` of the same run.
// Env: BASE_URL, PEREGRINE_BIN, DB.
import { execFileSync } from "node:child_process";
import assert from "node:assert/strict";

const base = process.env.BASE_URL;
const bin = process.env.PEREGRINE_BIN;
const db = process.env.DB;

const post = await fetch(`${base}/api/v1/jobs`, {
  method: "POST",
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify({ video: "ped_pets09s2l1_campus_480x360.mp4", params: { end: 4 } }),
});
assert.ok(post.status === 202 || post.status === 200, `submit: ${post.status}`);
const { id } = await post.json();

// SSE until the `end` event.
const r = await fetch(`${base}/api/v1/jobs/${id}/events`);
assert.equal(r.headers.get("content-type"), "text/event-stream");
const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
let buf = "";
let last = null;
let events = 0;
outer: for (;;) {
  const { value, done } = await reader.read();
  if (done) break;
  buf += value;
  let i;
  while ((i = buf.indexOf("\n\n")) >= 0) {
    const block = buf.slice(0, i);
    buf = buf.slice(i + 2);
    const name = block.match(/^event: (.*)$/m)?.[1];
    const data = block.match(/^data: (.*)$/m)?.[1];
    if (!data) continue;
    events++;
    last = JSON.parse(data);
    if (name === "end") break outer;
  }
}
await reader.cancel().catch(() => {});
assert.equal(last?.state, "done", JSON.stringify(last));
const run = last.run_id;

const items = [];
let cursor = null;
do {
  const page = await (
    await fetch(`${base}/api/v1/runs/${run}/detections?limit=100${cursor ? `&cursor=${cursor}` : ""}`)
  ).json();
  items.push(...page.items);
  cursor = page.next_cursor;
} while (cursor);

const exported = execFileSync(bin, ["export", String(run), "--format", "jsonl", "--db", db], {
  encoding: "utf8",
  maxBuffer: 256 << 20,
})
  .split("\n")
  .filter(Boolean)
  .map((l) => JSON.parse(l));
assert.ok(exported.length > 100, `only ${exported.length} detections`);
assert.deepEqual(items, exported);
console.log(`export-parity: job ${id}, ${events} SSE events, run ${run}: ${items.length} detections identical to peregrine export`);
