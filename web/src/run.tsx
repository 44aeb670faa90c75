import { memo, useCallback, useEffect, useMemo, useRef, useState } from "react";
import { useInfiniteQuery, useQuery } from "@tanstack/react-query";
import { useVirtualizer } from "@tanstack/react-virtual";
import { api, baseName, Counts, Detection, EvalView, Match, MatchKind, RunSummary } from "./api";
import { Filters, Hit, MATCH_STYLE, passes, trackColor } from "./overlay";
import { MatchLegend, Player, PlayerHandle } from "./player";
import { when } from "./runs";
import { ApTable, ErrorsTable, EvalForm, evalLabel, MetricCards, PrChart } from "./evals";

const ROW_HEIGHT = 26;
const PAGE = 1000;

/// The run's detections as one virtual list: only visible rows are in the
/// DOM; keyset pages load in order as the view reaches unloaded rows. Class
/// (one) and track filter on the server; score and several classes here.
const DetectionTable = memo(function DetectionTable({
  run,
  total,
  filters,
  onPick,
}: {
  run: number;
  total: number;
  filters: Filters;
  onPick: (d: Detection) => void;
}) {
  const cls = filters.classes.size === 1 ? [...filters.classes][0] : undefined;
  const pages = useInfiniteQuery({
    queryKey: ["detections", run, cls ?? "", filters.track],
    queryFn: ({ pageParam }) => api.detections(run, pageParam, PAGE, { class: cls, track: filters.track }),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor,
    // Pages never change once loaded; comparing 100k rows deeply on every
    // new page (the default) is a long task.
    structuralSharing: false,
  });
  // All loaded rows in one array, appended to page by page (copying 100k
  // rows on every new page would be a long task).
  const acc = useRef<{ key: string; first: unknown; pages: number; rows: Detection[] }>({ key: "", first: null, pages: 0, rows: [] });
  const ps = pages.data?.pages ?? [];
  const key = `${run}|${cls ?? ""}|${filters.track}`;
  const a = acc.current;
  if (a.key !== key || a.first !== ps[0] || ps.length < a.pages) {
    acc.current = { key, first: ps[0], pages: 0, rows: [] };
  }
  for (const p of ps.slice(acc.current.pages)) for (const d of p.items) acc.current.rows.push(d);
  acc.current.pages = ps.length;
  const raw = acc.current.rows;
  const loadedCount = raw.length;
  const rows = useMemo(
    () => (filters.minScore > 0 || filters.classes.size > 1 ? raw.filter((d) => passes(filters, d.class, d.score, d.track_id)) : raw),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [raw, loadedCount, filters],
  );
  const done = pages.data !== undefined && !pages.hasNextPage;
  const filtered = cls !== undefined || filters.track !== null || filters.minScore > 0 || filters.classes.size > 1;
  const count = done || filtered ? rows.length + (done ? 0 : 1) : Math.max(total, rows.length);
  const parent = useRef<HTMLDivElement>(null);
  const v = useVirtualizer({
    count,
    getScrollElement: () => parent.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 30,
  });
  const items = v.getVirtualItems();
  const lastIndex = items.length ? items[items.length - 1].index : 0;
  const { hasNextPage, isFetchingNextPage, fetchNextPage } = pages;
  useEffect(() => {
    if (hasNextPage && !isFetchingNextPage && lastIndex >= rows.length - PAGE / 4) fetchNextPage();
  }, [lastIndex, rows.length, hasNextPage, isFetchingNextPage, fetchNextPage]);
  return (
    <div className="dets">
      <div className="dets-head">
        <span>#</span>
        <span>frame</span>
        <span>t (s)</span>
        <span>class</span>
        <span>score</span>
        <span>track</span>
        <span>box</span>
      </div>
      <div
        ref={parent}
        className="dets-scroll"
        data-testid="detections"
        data-loaded={raw.length}
        data-shown={rows.length}
        data-complete={done}
      >
        <div style={{ height: v.getTotalSize(), position: "relative" }}>
          {items.map((it) => {
            const d = rows[it.index];
            return (
              <div
                key={it.key}
                className="dets-row"
                data-index={it.index}
                style={{ transform: `translateY(${it.start}px)`, height: ROW_HEIGHT }}
                onClick={() => d && onPick(d)}
              >
                <span>{it.index + 1}</span>
                {d ? (
                  <>
                    <span>{d.frame}</span>
                    <span>{d.t.toFixed(2)}</span>
                    <span>
                      <i className="dot" style={{ background: trackColor(d.track_id, d.class_id) }} />
                      {d.class}
                    </span>
                    <span>{d.score.toFixed(2)}</span>
                    <span>{d.track_id ?? ""}</span>
                    <span>
                      {Math.round(d.x1)},{Math.round(d.y1)} – {Math.round(d.x2)},{Math.round(d.y2)}
                    </span>
                  </>
                ) : (
                  <span className="loading">loading…</span>
                )}
              </div>
            );
          })}
        </div>
      </div>
      <p className="muted small">
        {filtered
          ? `${rows.length.toLocaleString()} matching of ${raw.length.toLocaleString()} loaded`
          : `${raw.length.toLocaleString()} of ${Math.max(total, raw.length).toLocaleString()} loaded`}
        {pages.error ? ` — ${pages.error.message}` : ""}
      </p>
    </div>
  );
});

const TrackList = memo(function TrackList({
  run,
  frames,
  selected,
  onPick,
}: {
  run: number;
  frames: number;
  selected: number | null;
  onPick: (track: number, frame: number) => void;
}) {
  const q = useQuery({ queryKey: ["tracks", run], queryFn: () => api.tracks(run) });
  if (q.error) return <p className="error">{q.error.message}</p>;
  const rows = q.data ?? [];
  return (
    <div className="tracks">
      <table className="compact clickable tracks-table">
        <thead>
          <tr>
            <th className="num">id</th>
            <th>class</th>
            <th className="num">frames</th>
            <th className="num">from</th>
            <th className="num">to</th>
            <th className="num">mean score</th>
            <th className="num">path px</th>
            <th className="span-col">lifespan</th>
          </tr>
        </thead>
        <tbody>
          {rows.slice(0, 500).map((t) => (
            <tr
              key={t.track_id}
              className={selected === t.track_id ? "selected" : ""}
              onClick={() => onPick(t.track_id, t.first_frame)}
            >
              <td className="num">
                <i className="dot" style={{ background: trackColor(t.track_id, t.class_id) }} />
                {t.track_id}
              </td>
              <td>{t.class}</td>
              <td className="num">{t.frames}</td>
              <td className="num">{t.first_frame}</td>
              <td className="num">{t.last_frame}</td>
              <td className="num">{t.mean_score.toFixed(2)}</td>
              <td className="num">{t.path_px.toFixed(0)}</td>
              <td className="span-col">
                <span className="span-track">
                  <span
                    style={{
                      left: `${(t.first_frame / Math.max(1, frames)) * 100}%`,
                      width: `${Math.max(0.5, ((t.last_frame - t.first_frame + 1) / Math.max(1, frames)) * 100)}%`,
                      background: trackColor(t.track_id, t.class_id),
                    }}
                  />
                </span>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {rows.length > 500 && <p className="muted small">first 500 of {rows.length} tracks</p>}
      {!rows.length && !q.isLoading && <p className="muted">This run has no tracks.</p>}
    </div>
  );
});

const SERIES_COLORS = ["#0969da", "#cf222e", "#1a7f37", "#bf8700", "#8250df", "#1b7c83", "#e16f24", "#6e7781"];

/// Counts over time: one polyline per series (a line's in and out
/// crossings, a zone's mean occupancy) over the run's intervals, in SVG.
function CountsChart({ counts }: { counts: Counts }) {
  const iv = counts.intervals;
  const series: { name: string; values: number[] }[] = [];
  counts.lines.forEach((l, i) => {
    series.push({ name: `${l.name} in`, values: iv.map((x) => x.lines[i]?.in ?? 0) });
    series.push({ name: `${l.name} out`, values: iv.map((x) => x.lines[i]?.out ?? 0) });
  });
  counts.zones.forEach((z, i) => {
    series.push({ name: `${z.name} mean occupancy`, values: iv.map((x) => x.zones[i]?.mean ?? 0) });
  });
  const [w, h, left, bottom] = [560, 200, 36, 22];
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  const x = (i: number) => left + (iv.length > 1 ? (i * (w - left - 8)) / (iv.length - 1) : (w - left) / 2);
  const y = (v: number) => h - bottom - (v * (h - bottom - 8)) / max;
  return (
    <svg className="chart counts-chart" width={w} height={h + 18 * Math.ceil(series.length / 3)} data-testid="counts-chart">
      <line x1={left} y1={y(0)} x2={w} y2={y(0)} stroke="#d0d7de" />
      <text x={2} y={y(max) + 4}>
        {Number.isInteger(max) ? max : max.toFixed(1)}
      </text>
      <text x={2} y={y(0)}>
        0
      </text>
      {iv.map((p, i) => (
        <text key={i} x={x(i) - 8} y={h - 4}>
          {p.start_s}s
        </text>
      ))}
      {series.map((s, k) => (
        <g key={s.name} data-series={s.name}>
          <polyline
            fill="none"
            stroke={SERIES_COLORS[k % SERIES_COLORS.length]}
            strokeWidth={2}
            points={s.values.map((v, i) => `${x(i)},${y(v)}`).join(" ")}
          />
          {s.values.map((v, i) => (
            <circle key={i} cx={x(i)} cy={y(v)} r={2.5} fill={SERIES_COLORS[k % SERIES_COLORS.length]}>
              <title>{`${s.name}: ${Number.isInteger(v) ? v : v.toFixed(2)} (${iv[i].start_s}–${iv[i].end_s} s)`}</title>
            </circle>
          ))}
          <rect
            x={left + (k % 3) * 180}
            y={h + 6 + 18 * Math.floor(k / 3)}
            width={10}
            height={10}
            fill={SERIES_COLORS[k % SERIES_COLORS.length]}
          />
          <text x={left + (k % 3) * 180 + 14} y={h + 15 + 18 * Math.floor(k / 3)}>
            {s.name}
          </text>
        </g>
      ))}
    </svg>
  );
}

/// Lines and zones of the run (if it has any): totals and the chart.
function CountsPanel({ run }: { run: number }) {
  const q = useQuery({ queryKey: ["counts", run], queryFn: () => api.counts(run) });
  if (q.error) return <p className="error">{q.error.message}</p>;
  if (q.data === null) return <p className="muted">No counts: this run was analysed without lines or zones.</p>;
  if (!q.data) return null;
  const c = q.data;
  return (
    <div className="counts" data-testid="counts">
      <h3>Counts (per {c.interval_s} s)</h3>
      <table className="compact counts-table">
        <tbody>
          {c.lines.map((l) => (
            <tr key={`l-${l.name}`}>
              <td>line {l.name}</td>
              <td>in {l.in}</td>
              <td>out {l.out}</td>
              <td className="muted">
                {Object.entries(l.by_class)
                  .map(([k, v]) => `${k} ${v.in}/${v.out}`)
                  .join(", ")}
              </td>
            </tr>
          ))}
          {c.zones.map((z) => (
            <tr key={`z-${z.name}`}>
              <td>zone {z.name}</td>
              <td>max {z.max}</td>
              <td>mean {z.mean.toFixed(2)}</td>
              <td className="muted">
                {z.entries} entries, {z.exits} exits
                {z.dwell_s.mean !== null ? `, dwell ${z.dwell_s.mean.toFixed(1)} s` : ""}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {c.intervals.length > 0 && <CountsChart counts={c} />}
    </div>
  );
}

/// Where detections of the selected class / track occur: the server's
/// per-bin counts as bars, the playhead, click to seek.
export function Timeline({
  run,
  frames,
  frame,
  filters,
  onSeek,
}: {
  run: number;
  frames: number;
  frame: number;
  filters: Filters;
  onSeek: (f: number) => void;
}) {
  const bins = Math.max(1, Math.min(240, frames));
  const cls = filters.classes.size === 1 ? [...filters.classes][0] : undefined;
  const q = useQuery({
    queryKey: ["timeline", run, bins, cls ?? "", filters.track, filters.minScore],
    queryFn: () => api.timeline(run, bins, { class: cls, track: filters.track, min_score: filters.minScore }),
    placeholderData: (prev) => prev,
  });
  const data = q.data?.bins ?? [];
  const max = Math.max(1, ...data.map((b) => b.count));
  const total = q.data?.frames ?? frames;
  const svgRef = useRef<SVGSVGElement>(null);
  const seekAt = (e: React.MouseEvent) => {
    const r = svgRef.current!.getBoundingClientRect();
    onSeek(Math.round(((e.clientX - r.left) / r.width) * Math.max(0, total - 1)));
  };
  const what = [cls ?? (filters.classes.size ? `${filters.classes.size} classes` : "all classes")];
  if (filters.track !== null) what.push(`track ${filters.track}`);
  if (filters.minScore > 0) what.push(`score ≥ ${filters.minScore.toFixed(2)}`);
  return (
    <div className="timeline" data-testid="timeline">
      <div className="timeline-head">
        <span>Timeline</span>
        <span className="muted">{what.join(" · ")}</span>
        {q.error && <span className="error">{q.error.message}</span>}
      </div>
      <svg ref={svgRef} viewBox={`0 0 ${bins} 40`} preserveAspectRatio="none" onClick={seekAt} data-bins={data.length}>
        <rect x={0} y={0} width={bins} height={40} className="tl-bg" />
        {data.map((b, i) =>
          b.count ? (
            <rect
              key={i}
              x={(b.frame_from / Math.max(1, total)) * bins}
              width={Math.max(0.6, ((b.frame_to - b.frame_from + 1) / Math.max(1, total)) * bins)}
              y={40 - (b.count / max) * 38}
              height={(b.count / max) * 38}
              className="tl-bar"
            />
          ) : null,
        )}
        <rect x={(frame / Math.max(1, total - 1)) * bins - 0.4} width={0.8} y={0} height={40} className="tl-head" />
      </svg>
    </div>
  );
}

function FrameList({
  dets,
  matches,
  filters,
  onPick,
}: {
  dets: Detection[];
  matches: Match[] | null;
  filters: Filters;
  onPick: (track: number | null) => void;
}) {
  if (matches) {
    const ms = matches.filter((m) => passes(filters, m.class, m.score, m.kind === "fn" ? filters.track : m.track_id));
    return (
      <table className="compact clickable frame-list" data-testid="frame-list" data-rows={ms.length}>
        <tbody>
          {ms.map((m, i) => (
            <tr key={i} onClick={() => onPick(m.track_id ?? null)}>
              <td>
                <span className={`tag ${m.kind}`} style={{ background: MATCH_STYLE[m.kind as MatchKind].color }}>
                  {m.kind.toUpperCase()}
                </span>
              </td>
              <td>{m.class}</td>
              <td className="num">{m.track_id != null ? `#${m.track_id}` : m.gt_id != null ? `gt ${m.gt_id}` : ""}</td>
              <td className="num">{m.score != null ? m.score.toFixed(2) : ""}</td>
              <td className="num">{m.iou != null ? `IoU ${m.iou.toFixed(2)}` : ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
    );
  }
  const ds = dets.filter((d) => passes(filters, d.class, d.score, d.track_id));
  return (
    <table className="compact clickable frame-list" data-testid="frame-list" data-rows={ds.length}>
      <tbody>
        {ds.slice(0, 200).map((d, i) => (
          <tr key={i} onClick={() => onPick(d.track_id ?? null)}>
            <td>
              <i className="dot" style={{ background: trackColor(d.track_id, d.class_id) }} />
              {d.class}
            </td>
            <td className="num">{d.track_id != null ? `#${d.track_id}` : ""}</td>
            <td className="num">{d.score.toFixed(2)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function FilterPanel({
  classes,
  filters,
  setFilters,
}: {
  classes: string[];
  filters: Filters;
  setFilters: (f: Filters) => void;
}) {
  const toggle = (c: string) => {
    const s = new Set(filters.classes);
    if (s.has(c)) s.delete(c);
    else s.add(c);
    setFilters({ ...filters, classes: s });
  };
  return (
    <div className="filters" data-testid="filters">
      <div className="filter-row">
        <span className="filter-label">Classes</span>
        <div className="chips">
          <button className={`chip ${filters.classes.size === 0 ? "on" : ""}`} onClick={() => setFilters({ ...filters, classes: new Set() })}>
            all
          </button>
          {classes.map((c) => (
            <button key={c} className={`chip ${filters.classes.has(c) ? "on" : ""}`} data-class={c} onClick={() => toggle(c)}>
              {c}
            </button>
          ))}
        </div>
      </div>
      <div className="filter-row">
        <label className="filter-label" htmlFor="min-score">
          Score ≥
        </label>
        <input
          id="min-score"
          name="min-score"
          type="range"
          min={0}
          max={1}
          step={0.05}
          value={filters.minScore}
          onChange={(e) => setFilters({ ...filters, minScore: Number(e.target.value) })}
        />
        <span className="num score-val">{filters.minScore.toFixed(2)}</span>
      </div>
      <div className="filter-row">
        <label className="filter-label" htmlFor="track">
          Track
        </label>
        <input
          id="track"
          name="track"
          type="number"
          min={0}
          placeholder="any"
          value={filters.track ?? ""}
          onChange={(e) => setFilters({ ...filters, track: e.target.value === "" ? null : Number(e.target.value) })}
        />
        {filters.track !== null && (
          <button className="link" onClick={() => setFilters({ ...filters, track: null })}>
            clear
          </button>
        )}
      </div>
    </div>
  );
}

type Tab = "detections" | "tracks" | "evaluation" | "counts";

export function runTitle(r: RunSummary) {
  return r.video ? baseName(r.video) : `video ${r.video_id}`;
}

export function RunViewer({ id, initialTab }: { id: number; initialTab?: string }) {
  const run = useQuery({ queryKey: ["run", id], queryFn: () => api.run(id) });
  const evals = useQuery({ queryKey: ["evals", id], queryFn: () => api.evals(id) });
  const tracks = useQuery({ queryKey: ["tracks", id], queryFn: () => api.tracks(id) });
  const [filters, setFilters] = useState<Filters>({ classes: new Set(), minScore: 0, track: null });
  const [seen, setSeen] = useState<string[]>([]);
  const [frame, setFrame] = useState(0);
  const [frameData, setFrameData] = useState<{ dets: Detection[]; matches: Match[] | null }>({ dets: [], matches: null });
  const [tab, setTab] = useState<Tab>((initialTab as Tab) || "detections");
  const [evalId, setEvalId] = useState<number | null>(null);
  const [colourByMatch, setColourByMatch] = useState(true);
  const [showTrails, setShowTrails] = useState(true);
  const [showLabels, setShowLabels] = useState(true);
  const player = useRef<PlayerHandle>(null);

  const evalList = evals.data ?? [];
  const current: EvalView | undefined = evalList.find((e) => e.id === evalId) ?? evalList[evalList.length - 1];
  useEffect(() => {
    if (evalId === null && evalList.length) setEvalId(evalList[evalList.length - 1].id);
  }, [evalList, evalId]);

  const classes = useMemo(() => {
    const s = new Set(seen);
    for (const t of tracks.data ?? []) s.add(t.class);
    return [...s].sort();
  }, [seen, tracks.data]);

  const seek = useCallback((f: number) => player.current?.seek(f), []);
  const pickDet = useCallback((d: Detection) => seek(d.frame), [seek]);
  const pickTrack = useCallback(
    (track: number, first: number) => {
      setFilters((f) => ({ ...f, track }));
      seek(first);
    },
    [seek],
  );
  const onPick = useCallback((h: Hit) => h.track !== null && setFilters((f) => ({ ...f, track: h.track })), []);
  const onFrameData = useCallback(
    (_f: number, dets: Detection[][], matches: Match[] | null) => setFrameData({ dets: dets[0] ?? [], matches }),
    [],
  );

  if (run.error) return <p className="error">{run.error.message}</p>;
  if (!run.data) return <p className="muted">Loading…</p>;
  const r = run.data;
  const matchMode = colourByMatch && current?.has_matches ? current.id : null;
  const counts: Record<MatchKind, number> | null = frameData.matches
    ? frameData.matches.reduce(
        (acc, m) => {
          if (passes(filters, m.class, m.score, m.kind === "fn" ? filters.track : m.track_id)) acc[m.kind as MatchKind]++;
          return acc;
        },
        { tp: 0, fp: 0, fn: 0, idsw: 0 } as Record<MatchKind, number>,
      )
    : null;
  const frames = r.frames;
  return (
    <div className="run-page" data-run={r.id}>
      <section className="run-head">
        <div>
          <h2>
            Run {r.id} <span className="muted">· {runTitle(r)}</span>
          </h2>
          <div className="meta">
            <span className={`pill status-${r.status}`}>{r.status}</span>
            <span>{r.model}</span>
            <span>{r.frames.toLocaleString()} frames</span>
            <span>{r.detections.toLocaleString()} detections</span>
            <span>{r.tracks.toLocaleString()} tracks</span>
            <span>
              {r.width}×{r.height} @ {r.video_fps.toFixed(2)} fps
            </span>
            {r.pose && <span>pose</span>}
          </div>
        </div>
        <a className="button" href={`#/runs?compare=${r.id}`}>
          Compare with…
        </a>
      </section>
      <div className="workbench">
        <section className="stage">
          <Player
            ref={player}
            src={r.video_url}
            runs={[{ id: r.id, detections: r.detections, frames: r.frames }]}
            width={r.width}
            height={r.height}
            fps={r.video_fps}
            frames={frames}
            filters={filters}
            evalId={matchMode}
            trails={showTrails}
            labels={showLabels}
            onFrame={setFrame}
            onFrameData={onFrameData}
            onPick={onPick}
            onClasses={setSeen}
          >
            <Timeline run={r.id} frames={frames} frame={frame} filters={filters} onSeek={seek} />
          </Player>
        </section>
        <aside className="side">
          <section>
            <h3>Filters</h3>
            <FilterPanel classes={classes} filters={filters} setFilters={setFilters} />
            <div className="toggles">
              <label>
                <input type="checkbox" checked={showLabels} onChange={(e) => setShowLabels(e.target.checked)} /> labels
              </label>
              <label>
                <input type="checkbox" checked={showTrails} onChange={(e) => setShowTrails(e.target.checked)} /> trails
              </label>
              {current?.has_matches && (
                <label>
                  <input
                    type="checkbox"
                    name="colour-by-match"
                    checked={colourByMatch}
                    onChange={(e) => setColourByMatch(e.target.checked)}
                  />{" "}
                  colour by ground truth
                </label>
              )}
            </div>
            {matchMode !== null && <MatchLegend counts={counts} />}
          </section>
          <section className="frame-panel">
            <h3>
              Frame {frame}{" "}
              <span className="muted small">
                {matchMode !== null ? "matches" : "detections"} shown
              </span>
            </h3>
            <FrameList
              dets={frameData.dets}
              matches={matchMode !== null ? frameData.matches : null}
              filters={filters}
              onPick={(t) => t !== null && setFilters((f) => ({ ...f, track: t }))}
            />
          </section>
        </aside>
      </div>
      <section className="tabs-section">
        <nav className="tabs">
          {(["detections", "tracks", "evaluation", "counts"] as Tab[]).map((t) => (
            <button key={t} className={tab === t ? "on" : ""} onClick={() => setTab(t)} data-tab={t}>
              {t === "evaluation" ? `evaluation (${evalList.length})` : t}
            </button>
          ))}
        </nav>
        {tab === "detections" && <DetectionTable run={r.id} total={r.detections} filters={filters} onPick={pickDet} />}
        {tab === "tracks" && <TrackList run={r.id} frames={frames} selected={filters.track} onPick={pickTrack} />}
        {tab === "counts" && <CountsPanel run={r.id} />}
        {tab === "evaluation" && (
          <div className="evaluation" data-testid="evaluation">
            {evalList.length > 0 && current && (
              <>
                <div className="eval-pick">
                  <label>
                    Evaluation{" "}
                    <select value={current.id} onChange={(e) => setEvalId(Number(e.target.value))}>
                      {evalList.map((e) => (
                        <option key={e.id} value={e.id}>
                          {evalLabel(e)}
                        </option>
                      ))}
                    </select>
                  </label>
                  <span className="muted small">{when(current.created_at)}</span>
                </div>
                <MetricCards ev={current} />
                <div className="eval-grid">
                  <div>
                    <h3>Precision–recall</h3>
                    {current.pr_curves ? <PrChart curves={current.pr_curves} /> : <p className="muted">No curves stored.</p>}
                    <ApTable ev={current} />
                  </div>
                  <div>
                    <h3>Errors, worst frames first</h3>
                    {current.has_matches ? (
                      <ErrorsTable
                        evalId={current.id}
                        onSeek={(f) => {
                          setColourByMatch(true);
                          seek(f);
                        }}
                      />
                    ) : (
                      <p className="muted">This evaluation has no per-frame matching stored.</p>
                    )}
                  </div>
                </div>
              </>
            )}
            {evalList.length === 0 && <p className="muted">No evaluation yet. Evaluate this run against ground truth:</p>}
            <h3>New evaluation</h3>
            <EvalForm run={r.id} onDone={(e) => setEvalId(e.id)} />
          </div>
        )}
      </section>
    </div>
  );
}
