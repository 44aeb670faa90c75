// The player's data and drawing, outside React: windows of frames fetched
// ahead of the playhead into a bounded cache, the time ↔ frame mapping, and
// the canvas painter (boxes, labels, track ids, trails, COCO-17 skeletons,
// evaluation colours).
import type { Detection, Match, MatchKind } from "./api";

/// One consistent visual language for evaluation results: overlay, legend,
/// timeline, tables and charts all use these.
export const MATCH_STYLE: Record<MatchKind, { color: string; label: string; dash: number[] }> = {
  tp: { color: "#1f9d55", label: "true positive", dash: [] },
  fp: { color: "#e5484d", label: "false positive", dash: [] },
  fn: { color: "#f5a524", label: "missed (FN)", dash: [6, 4] },
  idsw: { color: "#a855f7", label: "ID switch", dash: [] },
};

/// Colours of the two runs of a comparison.
export const RUN_COLORS = ["#3b82f6", "#f97316"];

const TRACK_COLORS = [
  "#3b82f6", "#f97316", "#10b981", "#e11d48", "#8b5cf6", "#14b8a6", "#eab308", "#ec4899",
  "#22c55e", "#6366f1", "#f43f5e", "#06b6d4", "#84cc16", "#d946ef", "#0ea5e9", "#f59e0b",
];

export function trackColor(track: number | null | undefined, cls: number): string {
  const k = track ?? cls * 7 + 3;
  return TRACK_COLORS[((k % TRACK_COLORS.length) + TRACK_COLORS.length) % TRACK_COLORS.length];
}

/// COCO-17 keypoint skeleton (pairs of keypoint indices).
export const COCO_SKELETON: [number, number][] = [
  [15, 13], [13, 11], [16, 14], [14, 12], [11, 12], [5, 11], [6, 12], [5, 6], [5, 7],
  [6, 8], [7, 9], [8, 10], [1, 2], [0, 1], [0, 2], [1, 3], [2, 4], [3, 5], [4, 6],
];

interface Win<T> {
  byFrame: Map<number, T[]>;
  used: number;
}

/// Items keyed by frame, fetched in windows of `size` frames; at most
/// `max` windows are kept (least recently used go first) and at most two
/// fetches run at a time.
export class WindowCache<T extends { frame: number }> {
  private wins = new Map<number, Win<T>>();
  private inflight = new Map<number, AbortController>();
  private tick = 0;
  public errors = 0;
  public lastError = "";
  constructor(
    private fetchWindow: (from: number, to: number, signal: AbortSignal) => Promise<T[]>,
    public readonly size: number,
    private max: number,
    private onLoad: () => void,
  ) {}

  /// The items of `frame`, or `undefined` while its window is not loaded.
  get(frame: number): T[] | undefined {
    const w = this.wins.get(Math.floor(frame / this.size));
    if (!w) return undefined;
    w.used = ++this.tick;
    return w.byFrame.get(frame) ?? [];
  }

  /// Like `get` but without touching recency or fetching (trails).
  peek(frame: number): T[] | undefined {
    const w = this.wins.get(Math.floor(frame / this.size));
    return w ? (w.byFrame.get(frame) ?? []) : undefined;
  }

  loaded(frame: number): boolean {
    return this.wins.has(Math.floor(frame / this.size));
  }

  /// Fetches the window of `frame` and `ahead` windows after it (and one
  /// before, for trails and stepping back).
  ensure(frame: number, ahead = 2) {
    const k = Math.floor(frame / this.size);
    for (const i of [k, k + 1, k - 1, ...Array.from({ length: Math.max(0, ahead - 1) }, (_, j) => k + 2 + j)]) {
      if (i < 0 || this.wins.has(i) || this.inflight.has(i)) continue;
      if (this.inflight.size >= 2 && i !== k) continue;
      this.load(i);
    }
    // Windows far from the playhead that are still loading are not needed.
    for (const [i, c] of this.inflight) if (i < k - 1 || i > k + ahead + 1) (c.abort(), this.inflight.delete(i));
  }

  private load(i: number) {
    const ctl = new AbortController();
    this.inflight.set(i, ctl);
    this.fetchWindow(i * this.size, (i + 1) * this.size - 1, ctl.signal)
      .then((items) => {
        if (this.inflight.get(i) !== ctl) return;
        this.inflight.delete(i);
        const byFrame = new Map<number, T[]>();
        for (const it of items) {
          let a = byFrame.get(it.frame);
          if (!a) byFrame.set(it.frame, (a = []));
          a.push(it);
        }
        this.wins.set(i, { byFrame, used: ++this.tick });
        while (this.wins.size > this.max) {
          let old = -1;
          let oldUsed = Infinity;
          for (const [j, w] of this.wins) if (w.used < oldUsed) (old = j), (oldUsed = w.used);
          this.wins.delete(old);
        }
        this.onLoad();
      })
      .catch((e) => {
        if (this.inflight.get(i) === ctl) this.inflight.delete(i);
        if (ctl.signal.aborted) return;
        this.errors++;
        this.lastError = String(e?.message ?? e);
        this.onLoad();
      });
  }

  dispose() {
    for (const c of this.inflight.values()) c.abort();
    this.inflight.clear();
    this.wins.clear();
  }

  get windows(): number {
    return this.wins.size;
  }
}

/// Maps the video's time to the run's stored frames: the frame shown at
/// time T is the one whose `t` is the greatest ≤ T (+ a tenth of a frame
/// for rounding). With a frames index (`[frame, t]` pairs) exactly; without
/// one from the frame rate.
export class FrameClock {
  private index: { frame: number[]; t: number[] } | null = null;
  /// Seconds to add to a stored `t` to get the video's currentTime.
  private offset = 0;
  constructor(
    public fps: number,
    public frames: number,
  ) {}

  setIndex(index: { frame: number[]; t: number[] } | null, offset = 0) {
    this.index = index && index.frame.length ? index : null;
    this.offset = offset;
  }

  frameAt(videoTime: number): number {
    const time = videoTime - this.offset;
    const eps = 0.1 / this.fps;
    const ix = this.index;
    if (ix) {
      let lo = 0;
      let hi = ix.t.length - 1;
      if (time + eps < ix.t[0]) return ix.frame[0];
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (ix.t[mid] <= time + eps) lo = mid;
        else hi = mid - 1;
      }
      return ix.frame[lo];
    }
    return Math.max(0, Math.min(this.frames - 1, Math.floor(time * this.fps + 0.1)));
  }

  /// Where to seek to show `frame`: a fifth of a frame after its time, so
  /// that rounding never lands on the frame before.
  timeOf(frame: number): number {
    const ix = this.index;
    let t = frame / this.fps;
    if (ix) {
      let lo = 0;
      let hi = ix.frame.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (ix.frame[mid] < frame) lo = mid + 1;
        else hi = mid;
      }
      t = ix.t[lo];
    }
    return Math.max(0, t + this.offset + 0.2 / this.fps);
  }

  step(frame: number, dir: 1 | -1): number {
    const ix = this.index;
    if (ix) {
      const i = ix.frame.indexOf(frame);
      if (i >= 0) return ix.frame[Math.max(0, Math.min(ix.frame.length - 1, i + dir))];
    }
    return Math.max(0, Math.min(this.frames - 1, frame + dir));
  }
}

export interface Filters {
  classes: Set<string>; // empty: all
  minScore: number;
  track: number | null;
}

export function passes(f: Filters, cls: string, score: number | null | undefined, track: number | null | undefined) {
  if (f.classes.size && !f.classes.has(cls)) return false;
  if (score !== null && score !== undefined && score < f.minScore) return false;
  if (f.track !== null && track !== f.track) return false;
  return true;
}

export interface Hit {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  track: number | null;
  frame: number;
}

/// A filled tag with `text` above `y` (below it with `below`, where ground
/// truth labels go so that they do not cover the predictions').
function label(ctx: CanvasRenderingContext2D, text: string, x: number, y: number, color: string, scale: number, below = false) {
  const fs = Math.round(11 * scale);
  ctx.font = `600 ${fs}px system-ui, sans-serif`;
  const w = ctx.measureText(text).width + 6 * scale;
  const h = fs + 4 * scale;
  const ty = below ? Math.min(y, ctx.canvas.height - h) : y - h < 0 ? y : y - h;
  // Kept inside the frame at its right edge.
  x = Math.max(0, Math.min(x, ctx.canvas.width - w));
  ctx.fillStyle = color;
  ctx.fillRect(x, ty, w, h);
  ctx.fillStyle = "#fff";
  ctx.fillText(text, x + 3 * scale, ty + h - 3.5 * scale);
}

/// Draws one frame's detections; returns the boxes drawn (for clicks).
export function drawDetections(
  ctx: CanvasRenderingContext2D,
  dets: Detection[],
  f: Filters,
  opts: { color?: string; scale: number; labels: boolean; trails?: Map<number, [number, number][]>; tag?: string },
): Hit[] {
  const hits: Hit[] = [];
  const s = opts.scale;
  for (const d of dets) {
    if (!passes(f, d.class, d.score, d.track_id)) continue;
    const c = opts.color ?? trackColor(d.track_id, d.class_id);
    const trail = d.track_id != null ? opts.trails?.get(d.track_id) : undefined;
    if (trail && trail.length > 1) {
      ctx.strokeStyle = c;
      ctx.globalAlpha = 0.7;
      ctx.lineWidth = 2 * s;
      ctx.setLineDash([]);
      ctx.beginPath();
      trail.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.stroke();
      ctx.globalAlpha = 1;
    }
    ctx.strokeStyle = c;
    ctx.lineWidth = 2 * s;
    ctx.setLineDash([]);
    ctx.strokeRect(d.x1, d.y1, d.x2 - d.x1, d.y2 - d.y1);
    const kp = d.keypoints;
    if (kp && kp.length >= 17) {
      ctx.lineWidth = 2 * s;
      ctx.strokeStyle = c;
      ctx.beginPath();
      for (const [a, b] of COCO_SKELETON) {
        if (kp[a][2] < 0.3 || kp[b][2] < 0.3) continue;
        ctx.moveTo(kp[a][0], kp[a][1]);
        ctx.lineTo(kp[b][0], kp[b][1]);
      }
      ctx.stroke();
      ctx.fillStyle = "#fff";
      for (const p of kp) if (p[2] >= 0.3) ctx.fillRect(p[0] - 2 * s, p[1] - 2 * s, 4 * s, 4 * s);
    }
    if (opts.labels) {
      const id = d.track_id != null ? ` #${d.track_id}` : "";
      label(ctx, `${opts.tag ?? ""}${d.class}${id} ${d.score.toFixed(2)}`, d.x1, d.y1, c, s);
    }
    hits.push({ x1: d.x1, y1: d.y1, x2: d.x2, y2: d.y2, track: d.track_id ?? null, frame: d.frame });
  }
  return hits;
}

/// Draws one frame's evaluation matches in the match colours.
export function drawMatches(
  ctx: CanvasRenderingContext2D,
  ms: Match[],
  f: Filters,
  opts: { scale: number; labels: boolean },
): { hits: Hit[]; counts: Record<MatchKind, number> } {
  const counts: Record<MatchKind, number> = { tp: 0, fp: 0, fn: 0, idsw: 0 };
  const hits: Hit[] = [];
  const s = opts.scale;
  // Misses first, so predictions are drawn over them.
  const order = [...ms].sort((a, b) => (a.kind === "fn" ? 0 : 1) - (b.kind === "fn" ? 0 : 1));
  for (const m of order) {
    const kind = m.kind as MatchKind;
    if (!passes(f, m.class, m.score, kind === "fn" ? f.track : m.track_id)) continue;
    const st = MATCH_STYLE[kind];
    counts[kind]++;
    ctx.strokeStyle = st.color;
    ctx.lineWidth = (kind === "idsw" ? 3 : 2) * s;
    ctx.setLineDash(st.dash.map((v) => v * s));
    ctx.strokeRect(m.x1, m.y1, m.x2 - m.x1, m.y2 - m.y1);
    ctx.setLineDash([]);
    if (opts.labels) {
      const who = kind === "fn" ? (m.gt_id != null ? `gt ${m.gt_id}` : "gt") : m.track_id != null ? `#${m.track_id}` : "";
      const fn = kind === "fn";
      label(ctx, `${kind.toUpperCase()} ${who}`.trim(), m.x1, fn ? m.y2 : m.y1, st.color, s, fn);
    }
    hits.push({ x1: m.x1, y1: m.y1, x2: m.x2, y2: m.y2, track: m.track_id ?? null, frame: m.frame });
  }
  return { hits, counts };
}

/// Centre points of each track over the `n` frames up to `frame` (from
/// what is cached; frames not loaded are skipped).
export function trails(cache: WindowCache<Detection>, frame: number, n: number): Map<number, [number, number][]> {
  const out = new Map<number, [number, number][]>();
  for (let f = Math.max(0, frame - n); f <= frame; f++) {
    const ds = cache.peek(f);
    if (!ds) continue;
    for (const d of ds) {
      if (d.track_id == null) continue;
      let a = out.get(d.track_id);
      if (!a) out.set(d.track_id, (a = []));
      a.push([(d.x1 + d.x2) / 2, d.y2]);
    }
  }
  return out;
}
