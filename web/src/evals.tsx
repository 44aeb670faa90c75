import { useState } from "react";
import { useInfiniteQuery, useMutation, useQueryClient } from "@tanstack/react-query";
import { api, EvalView } from "./api";
import { MATCH_STYLE } from "./overlay";

type Json = Record<string, unknown>;

/// The metrics object of an evaluation, flattened: its own keys, those of
/// `combined` (a MOT report) and of `overall`, lower-cased.
export function flatMetrics(m: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const add = (o: unknown) => {
    if (!o || typeof o !== "object" || Array.isArray(o)) return;
    for (const [k, v] of Object.entries(o as Json)) {
      if (v && typeof v === "object" && !Array.isArray(v) && (k === "combined" || k === "overall" || k === "summary" || k === "detection")) add(v);
      else if (!(k.toLowerCase() in out)) out[k.toLowerCase()] = v;
    }
  };
  add(m);
  return out;
}

export function num(m: Record<string, unknown>, ...keys: string[]): number | null {
  for (const k of keys) {
    const v = m[k.toLowerCase()];
    if (typeof v === "number" && Number.isFinite(v)) return v;
  }
  return null;
}

/// Per-class AP as `[class, ap, ap50]` rows, from `per_class` (a COCO
/// report's list or an object keyed by class).
export function perClassAp(m: Record<string, unknown>): { name: string; ap: number | null; ap50: number | null }[] {
  const pc = m["per_class"] ?? m["ap_per_class"] ?? m["classes"];
  if (Array.isArray(pc))
    return pc.map((c: Json) => ({
      name: String(c.name ?? c.class ?? c.category_id),
      ap: typeof c.ap === "number" ? c.ap : null,
      ap50: typeof c.ap50 === "number" ? c.ap50 : null,
    }));
  if (pc && typeof pc === "object")
    return Object.entries(pc as Json).map(([name, v]) => {
      if (typeof v === "number") return { name, ap: v, ap50: null };
      const o = (v ?? {}) as Json;
      return { name, ap: typeof o.ap === "number" ? o.ap : null, ap50: typeof o.ap50 === "number" ? o.ap50 : null };
    });
  return [];
}

const pct = (v: number | null) => (v === null ? "–" : `${(v * 100).toFixed(1)}`);

export function MetricCards({ ev, compareTo }: { ev: EvalView; compareTo?: EvalView | null }) {
  const m = flatMetrics(ev.metrics);
  const o = compareTo ? flatMetrics(compareTo.metrics) : null;
  const cards: { label: string; keys: string[]; ratio: boolean; lower?: boolean; title?: string }[] = [
    { label: "MOTA", keys: ["mota"], ratio: true },
    { label: "IDF1", keys: ["idf1"], ratio: true },
    { label: "HOTA", keys: ["hota"], ratio: true },
    { label: "DetA", keys: ["deta"], ratio: true },
    { label: "AssA", keys: ["assa"], ratio: true },
    { label: "MOTP", keys: ["motp"], ratio: true, lower: true, title: "mean 1 − IoU of matched boxes (lower is better)" },
    { label: "mAP", keys: ["map", "ap"], ratio: true },
    { label: "AP50", keys: ["ap50", "map50"], ratio: true },
    { label: "Precision", keys: ["precision"], ratio: true },
    { label: "Recall", keys: ["recall"], ratio: true },
    { label: "FP", keys: ["fp"], ratio: false, lower: true },
    { label: "FN", keys: ["fn"], ratio: false, lower: true },
    { label: "ID sw.", keys: ["idsw"], ratio: false, lower: true },
  ];
  return (
    <div className="cards" data-testid="metric-cards">
      {cards.map((c) => {
        const v = num(m, ...c.keys);
        if (v === null) return null;
        const w = o ? num(o, ...c.keys) : null;
        const better = w === null ? null : c.lower ? v < w : v > w;
        const cls = c.label === "FP" ? "fp" : c.label === "FN" ? "fn" : c.label === "ID sw." ? "idsw" : "";
        return (
          <div key={c.label} className={`card ${cls}`} data-metric={c.label} title={c.title}>
            <div className="card-label">{c.label}</div>
            <div className="card-value">
              {c.ratio ? pct(v) : v.toLocaleString()}
              {c.ratio && <small>%</small>}
            </div>
            {w !== null && w !== v && (
              <div className={`card-delta ${better ? "up" : "down"}`}>
                {c.ratio ? `${v > w ? "+" : ""}${((v - w) * 100).toFixed(1)}` : `${v > w ? "+" : ""}${v - w}`}
              </div>
            )}
          </div>
        );
      })}
    </div>
  );
}

const COMPARED: { label: string; keys: string[]; ratio: boolean; lower?: boolean }[] = [
  { label: "MOTA", keys: ["mota"], ratio: true },
  { label: "IDF1", keys: ["idf1"], ratio: true },
  { label: "HOTA", keys: ["hota"], ratio: true },
  { label: "DetA", keys: ["deta"], ratio: true },
  { label: "AssA", keys: ["assa"], ratio: true },
  { label: "mAP", keys: ["map", "ap"], ratio: true },
  { label: "AP50", keys: ["ap50", "map50"], ratio: true },
  { label: "Precision", keys: ["precision"], ratio: true },
  { label: "Recall", keys: ["recall"], ratio: true },
  { label: "FP", keys: ["fp"], ratio: false, lower: true },
  { label: "FN", keys: ["fn"], ratio: false, lower: true },
  { label: "ID switches", keys: ["idsw"], ratio: false, lower: true },
];

/// Two runs' evaluations side by side, the better value of each row bold.
export function MetricsCompare({ a, b, colors }: { a: EvalView | null; b: EvalView | null; colors: string[] }) {
  const ma = a ? flatMetrics(a.metrics) : null;
  const mb = b ? flatMetrics(b.metrics) : null;
  const rows = COMPARED.map((c) => ({ c, va: ma ? num(ma, ...c.keys) : null, vb: mb ? num(mb, ...c.keys) : null })).filter(
    (r) => r.va !== null || r.vb !== null,
  );
  const fmt = (v: number | null, ratio: boolean) => (v === null ? "–" : ratio ? `${(v * 100).toFixed(1)}%` : v.toLocaleString());
  return (
    <table className="compact metrics-compare" data-testid="metrics-compare">
      <thead>
        <tr>
          <th />
          <th className="num">
            <span className="run-badge" style={{ background: colors[0] }}>A</span>
          </th>
          <th className="num">
            <span className="run-badge" style={{ background: colors[1] }}>B</span>
          </th>
        </tr>
      </thead>
      <tbody>
        {rows.map(({ c, va, vb }) => {
          const best = va !== null && vb !== null && va !== vb ? ((c.lower ? va < vb : va > vb) ? "a" : "b") : null;
          return (
            <tr key={c.label} data-metric={c.label}>
              <td>{c.label}</td>
              <td className={`num ${best === "a" ? "best" : ""}`}>{fmt(va, c.ratio)}</td>
              <td className={`num ${best === "b" ? "best" : ""}`}>{fmt(vb, c.ratio)}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

export function ApTable({ ev }: { ev: EvalView }) {
  const rows = perClassAp(flatMetrics(ev.metrics));
  if (!rows.length) return null;
  return (
    <table className="compact ap-table">
      <thead>
        <tr>
          <th>class</th>
          <th className="num">AP</th>
          <th className="num">AP50</th>
          <th />
        </tr>
      </thead>
      <tbody>
        {rows.map((r) => (
          <tr key={r.name}>
            <td>{r.name}</td>
            <td className="num">{pct(r.ap)}</td>
            <td className="num">{pct(r.ap50)}</td>
            <td className="bar-cell">
              <span className="bar" style={{ width: `${Math.max(0, (r.ap ?? 0) * 100)}%` }} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

const CURVE_COLORS = ["#3b82f6", "#f97316", "#10b981", "#e11d48", "#8b5cf6", "#14b8a6", "#eab308", "#ec4899"];

type Curve = { recall: number; precision: number; score?: number | null }[];

/// Precision-recall curves, one polyline per class, in SVG, from the
/// stored `{iou, classes: {name: [{recall, precision, score}]}}`.
export function PrChart({ curves: doc }: { curves: unknown }) {
  const [hover, setHover] = useState<string | null>(null);
  const d = (doc ?? {}) as { iou?: number; classes?: Record<string, Curve> };
  const curves: Record<string, Curve> = d.classes ?? (doc as Record<string, Curve>);
  if (!curves || typeof curves !== "object") return null;
  const names = Object.keys(curves).filter((k) => curves[k]?.length);
  if (!names.length) return <p className="muted">No precision-recall curves stored for this evaluation.</p>;
  names.sort((a, b) => curves[b].length - curves[a].length);
  const [w, h, l, b, t, r] = [420, 260, 40, 30, 10, 12];
  const x = (v: number) => l + v * (w - l - r);
  const y = (v: number) => t + (1 - v) * (h - t - b);
  return (
    <div className="pr">
      <svg className="chart pr-chart" viewBox={`0 0 ${w} ${h}`} width={w} height={h} data-testid="pr-chart">
        {[0, 0.25, 0.5, 0.75, 1].map((g) => (
          <g key={g}>
            <line x1={x(0)} x2={x(1)} y1={y(g)} y2={y(g)} className="grid" />
            <line x1={x(g)} x2={x(g)} y1={y(0)} y2={y(1)} className="grid" />
            <text x={l - 6} y={y(g) + 4} textAnchor="end">
              {g}
            </text>
            <text x={x(g)} y={h - b + 16} textAnchor="middle">
              {g}
            </text>
          </g>
        ))}
        <text x={x(0.5)} y={h - 2} textAnchor="middle" className="axis">
          recall{d.iou ? ` (IoU ${d.iou})` : ""}
        </text>
        <text x={10} y={y(0.5)} textAnchor="middle" className="axis" transform={`rotate(-90 10 ${y(0.5)})`}>
          precision
        </text>
        {names.map((n, i) => (
          <polyline
            key={n}
            data-class={n}
            fill="none"
            stroke={CURVE_COLORS[i % CURVE_COLORS.length]}
            strokeWidth={hover === n ? 3 : 2}
            opacity={hover && hover !== n ? 0.25 : 1}
            points={curves[n].map((p) => `${x(p.recall).toFixed(1)},${y(p.precision).toFixed(1)}`).join(" ")}
          />
        ))}
      </svg>
      <div className="pr-legend">
        {names.map((n, i) => (
          <span key={n} onMouseEnter={() => setHover(n)} onMouseLeave={() => setHover(null)}>
            <i style={{ background: CURVE_COLORS[i % CURVE_COLORS.length] }} />
            {n}
          </span>
        ))}
      </div>
    </div>
  );
}

/// Frames with the most errors first; a click seeks the player there.
export function ErrorsTable({ evalId, onSeek }: { evalId: number; onSeek: (frame: number) => void }) {
  const q = useInfiniteQuery({
    queryKey: ["errors", evalId],
    queryFn: ({ pageParam }) => api.errors(evalId, pageParam, 50),
    initialPageParam: null as string | null,
    getNextPageParam: (p) => p.next_cursor ?? undefined,
  });
  const rows = q.data?.pages.flatMap((p) => p.items) ?? [];
  const max = Math.max(1, ...rows.map((r) => r.errors));
  if (q.error) return <p className="error">{q.error.message}</p>;
  return (
    <div className="errors" data-testid="errors">
      <table className="compact clickable">
        <thead>
          <tr>
            <th className="num">frame</th>
            <th className="num">time</th>
            <th className="num">errors</th>
            <th className="num fp">FP</th>
            <th className="num fn">FN</th>
            <th className="num idsw">ID sw.</th>
            <th className="num tp">TP</th>
            <th className="wide" />
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.frame} data-frame={r.frame} data-fp={r.fp} onClick={() => onSeek(r.frame)}>
              <td className="num">{r.frame}</td>
              <td className="num">{r.t != null ? `${r.t.toFixed(2)} s` : "–"}</td>
              <td className="num">
                <b>{r.errors}</b>
              </td>
              <td className="num">{r.fp}</td>
              <td className="num">{r.fn}</td>
              <td className="num">{r.idsw}</td>
              <td className="num">{r.tp}</td>
              <td className="wide">
                <span className="stack" style={{ width: `${(r.errors / max) * 100}%` }}>
                  {(["fp", "fn", "idsw"] as const).map((k) =>
                    r[k] ? (
                      <span key={k} style={{ flex: r[k], background: MATCH_STYLE[k].color }} title={`${r[k]} ${MATCH_STYLE[k].label}`} />
                    ) : null,
                  )}
                </span>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {!rows.length && !q.isLoading && <p className="muted">No errors: every ground-truth box was matched.</p>}
      {q.hasNextPage && (
        <button onClick={() => q.fetchNextPage()} disabled={q.isFetchingNextPage}>
          More frames
        </button>
      )}
    </div>
  );
}

/// Evaluate the run against ground truth: a path under the media root, or
/// an uploaded file.
export function EvalForm({ run, onDone }: { run: number; onDone: (e: EvalView) => void }) {
  const qc = useQueryClient();
  const [mode, setMode] = useState<"path" | "upload">("upload");
  const [gt, setGt] = useState("");
  const [file, setFile] = useState<File | null>(null);
  const [format, setFormat] = useState("mot");
  const [iou, setIou] = useState(0.5);
  const [force, setForce] = useState(false);
  const m = useMutation({
    mutationFn: () =>
      mode === "path"
        ? api.evaluate(run, { gt, format, iou, force: force || undefined })
        : api.evaluateUpload(run, file!, format, iou, force),
    onSuccess: (e) => {
      qc.invalidateQueries({ queryKey: ["evals", run] });
      onDone(e);
    },
  });
  return (
    <form
      className="eval-form"
      data-testid="eval-form"
      onSubmit={(e) => {
        e.preventDefault();
        m.mutate();
      }}
    >
      <div className="seg">
        <label>
          <input type="radio" name="gtmode" checked={mode === "upload"} onChange={() => setMode("upload")} /> upload
        </label>
        <label>
          <input type="radio" name="gtmode" checked={mode === "path"} onChange={() => setMode("path")} /> path in media root
        </label>
      </div>
      {mode === "path" ? (
        <input name="gt" placeholder="e.g. PETS09/gt/gt.txt" value={gt} onChange={(e) => setGt(e.target.value)} />
      ) : (
        <input name="gtfile" type="file" onChange={(e) => setFile(e.target.files?.[0] ?? null)} />
      )}
      <select name="format" value={format} onChange={(e) => setFormat(e.target.value)} aria-label="format">
        <option value="mot">MOTChallenge</option>
        <option value="coco">COCO</option>
      </select>
      <label>
        IoU{" "}
        <input name="iou" type="number" min={0.05} max={0.95} step={0.05} value={iou} onChange={(e) => setIou(Number(e.target.value))} />
      </label>
      <label title="score even when the run's video and the ground truth differ in length">
        <input name="force" type="checkbox" checked={force} onChange={(e) => setForce(e.target.checked)} /> lengths may differ
      </label>
      <button type="submit" disabled={m.isPending || (mode === "path" ? !gt : !file)}>
        {m.isPending ? "Evaluating…" : "Evaluate"}
      </button>
      {m.error && <span className="error">{m.error.message}</span>}
    </form>
  );
}

export function evalLabel(e: EvalView): string {
  return `#${e.id} ${e.kind} · ${e.gt}`;
}
