import { useEffect, useMemo, useRef, useState } from "react";
import { useInfiniteQuery, useQuery } from "@tanstack/react-query";
import { useVirtualizer } from "@tanstack/react-virtual";
import { api, Counts, Detection } from "./api";

const ROW_HEIGHT = 26;
const PAGE = 1000;

/// The run's detections as one virtual list: only visible rows are in the
/// DOM; keyset pages load in order as the view reaches unloaded rows.
function DetectionTable({ run, total, onPick }: { run: number; total: number; onPick: (d: Detection) => void }) {
  const pages = useInfiniteQuery({
    queryKey: ["detections", run],
    queryFn: ({ pageParam }) => api.detections(run, pageParam, PAGE),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor,
  });
  const rows = useMemo(() => pages.data?.pages.flatMap((p) => p.items) ?? [], [pages.data]);
  const done = pages.data !== undefined && !pages.hasNextPage;
  const count = done ? rows.length : Math.max(total, rows.length);
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
      <div ref={parent} className="dets-scroll" data-testid="detections" data-loaded={rows.length} data-complete={done}>
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
                    <span>{d.class}</span>
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
      <p className="muted">
        {rows.length.toLocaleString()} of {Math.max(total, rows.length).toLocaleString()} loaded
        {pages.error ? ` — ${pages.error.message}` : ""}
      </p>
    </div>
  );
}

function FrameViewer({ run, frame }: { run: number; frame: number }) {
  const [url, setUrl] = useState<string | null>(null);
  const [err, setErr] = useState("");
  useEffect(() => {
    let live = true;
    let made: string | null = null;
    setErr("");
    api
      .frameUrl(run, frame)
      .then((u) => {
        made = u;
        if (live) setUrl(u);
      })
      .catch((e) => live && setErr(e.message));
    return () => {
      live = false;
      if (made) URL.revokeObjectURL(made);
    };
  }, [run, frame]);
  return (
    <div className="frame">
      <h3>Frame {frame}</h3>
      {err ? <p className="error">{err}</p> : url ? <img src={url} alt={`frame ${frame}`} /> : <p>Rendering…</p>}
    </div>
  );
}

function TrackList({ run, onPick }: { run: number; onPick: (frame: number) => void }) {
  const q = useQuery({ queryKey: ["tracks", run], queryFn: () => api.tracks(run) });
  if (q.error) return <p className="error">{q.error.message}</p>;
  return (
    <div className="tracks">
      <h3>Tracks ({q.data?.length ?? 0})</h3>
      <table>
        <thead>
          <tr>
            <th>id</th>
            <th>class</th>
            <th>frames</th>
            <th>from</th>
            <th>to</th>
            <th>mean score</th>
            <th>path px</th>
          </tr>
        </thead>
        <tbody>
          {(q.data ?? []).slice(0, 500).map((t) => (
            <tr key={t.track_id} onClick={() => onPick(t.first_frame)}>
              <td>{t.track_id}</td>
              <td>{t.class}</td>
              <td>{t.frames}</td>
              <td>{t.first_frame}</td>
              <td>{t.last_frame}</td>
              <td>{t.mean_score.toFixed(2)}</td>
              <td>{t.path_px.toFixed(0)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

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
      <text x={2} y={y(max) + 4}>{Number.isInteger(max) ? max : max.toFixed(1)}</text>
      <text x={2} y={y(0)}>0</text>
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
          <rect x={left + (k % 3) * 180} y={h + 6 + 18 * Math.floor(k / 3)} width={10} height={10} fill={SERIES_COLORS[k % SERIES_COLORS.length]} />
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
  if (!q.data) return null;
  const c = q.data;
  return (
    <div className="counts" data-testid="counts">
      <h3>Counts (per {c.interval_s} s)</h3>
      <table>
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

export function RunViewer({ id }: { id: number }) {
  const run = useQuery({ queryKey: ["run", id], queryFn: () => api.run(id) });
  const [frame, setFrame] = useState(0);
  if (run.error) return <p className="error">{run.error.message}</p>;
  if (!run.data) return <p>Loading…</p>;
  const r = run.data;
  return (
    <section>
      <h2>
        Run {r.id} <span className="muted">{r.video_path.split("/").pop()}</span>
      </h2>
      <p className="muted">
        {r.status} · {r.frames} frames · {r.detections.toLocaleString()} detections · {r.tracks} tracks
      </p>
      <CountsPanel run={id} />
      <div className="run-grid">
        <DetectionTable run={id} total={r.detections} onPick={(d) => setFrame(d.frame)} />
        <div>
          <FrameViewer run={id} frame={frame} />
          <TrackList run={id} onPick={setFrame} />
        </div>
      </div>
    </section>
  );
}
