import { useEffect, useMemo, useRef, useState } from "react";
import { useInfiniteQuery, useQuery } from "@tanstack/react-query";
import { useVirtualizer } from "@tanstack/react-virtual";
import { api, Detection } from "./api";

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
