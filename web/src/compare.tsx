import { useEffect, useMemo, useRef, useState } from "react";
import { useQuery } from "@tanstack/react-query";
import { api, RunSummary } from "./api";
import { Filters, RUN_COLORS } from "./overlay";
import { Player, PlayerHandle } from "./player";
import { MetricsCompare } from "./evals";
import { FilterPanel, runTitle } from "./run";

/// Keeps `follower` on `leader`'s clock: play, pause and seeks are
/// mirrored, and drift over one frame is corrected while playing.
function useLinked(leader: React.RefObject<PlayerHandle>, follower: React.RefObject<PlayerHandle>, fps: number, on: boolean) {
  useEffect(() => {
    if (!on) return;
    let v: HTMLVideoElement | null = null;
    let timer = 0;
    const w = () => follower.current?.video();
    const sync = () => {
      const b = w();
      if (!v || !b) return;
      if (Math.abs(b.currentTime - v.currentTime) > 1 / fps) b.currentTime = v.currentTime;
    };
    const onPlay = () => w()?.play().catch(() => {});
    const onPause = () => (w()?.pause(), sync());
    const attach = () => {
      v = leader.current?.video() ?? null;
      if (!v) return (timer = window.setTimeout(attach, 100));
      v.addEventListener("play", onPlay);
      v.addEventListener("pause", onPause);
      v.addEventListener("seeked", sync);
      timer = window.setInterval(sync, 500);
    };
    attach();
    return () => {
      clearTimeout(timer);
      clearInterval(timer);
      v?.removeEventListener("play", onPlay);
      v?.removeEventListener("pause", onPause);
      v?.removeEventListener("seeked", sync);
    };
  }, [leader, follower, fps, on]);
}

function RunCard({ r, label, color }: { r: RunSummary; label: string; color: string }) {
  return (
    <div className="run-card" style={{ borderTopColor: color }} data-testid={`run-card-${label}`}>
      <div className="run-card-head">
        <span className="run-badge" style={{ background: color }}>
          {label}
        </span>
        <a href={`#/runs/${r.id}`}>Run {r.id}</a>
        <span className={`pill status-${r.status}`}>{r.status}</span>
      </div>
      <div className="run-card-model" title={r.model}>
        {r.model}
      </div>
      <div className="run-card-stats">
        <span>
          <b>{r.detections.toLocaleString()}</b> detections
        </span>
        <span>
          <b>{r.tracks.toLocaleString()}</b> tracks
        </span>
        <span>
          <b>{r.frames.toLocaleString()}</b> frames
        </span>
        {r.fps ? (
          <span>
            <b>{r.fps.toFixed(1)}</b> fps
          </span>
        ) : null}
      </div>
    </div>
  );
}

export function ComparePage({ a, b }: { a: number; b: number }) {
  const q = useQuery({ queryKey: ["compare", a, b], queryFn: () => api.compare(a, b, 200) });
  const ra = useQuery({ queryKey: ["run", a], queryFn: () => api.run(a) });
  const rb = useQuery({ queryKey: ["run", b], queryFn: () => api.run(b) });
  const [mode, setMode] = useState<"overlay" | "side">("overlay");
  const [show, setShow] = useState([true, true]);
  const [filters, setFilters] = useState<Filters>({ classes: new Set(), minScore: 0, track: null });
  const [selected, setSelected] = useState<number | null>(null);
  const pa = useRef<PlayerHandle>(null);
  const pb = useRef<PlayerHandle>(null);
  const fps = ra.data?.video_fps ?? 25;
  useLinked(pa, pb, fps, mode === "side");
  const visible = useMemo(() => show, [show]);
  const [seen, setSeen] = useState<string[]>([]);

  if (q.error) return <p className="error">{q.error.message}</p>;
  if (ra.error || rb.error) return <p className="error">{(ra.error ?? rb.error)!.message}</p>;
  if (!ra.data || !rb.data) return <p className="muted">Loading…</p>;
  const A = ra.data;
  const B = rb.data;
  const seek = (f: number) => {
    setSelected(f);
    pa.current?.seek(f);
    pb.current?.seek(f);
  };
  const playerProps = { width: A.width, height: A.height, fps: A.video_fps, frames: Math.max(A.frames, B.frames), filters };
  return (
    <div className="compare-page" data-testid="compare">
      <section className="run-head">
        <div>
          <h2>
            Compare <span className="muted">· {runTitle(A)}</span>
          </h2>
          <div className="meta">
            <span>
              {A.width}×{A.height} @ {A.video_fps.toFixed(2)} fps
            </span>
            <span>{Math.max(A.frames, B.frames).toLocaleString()} frames</span>
          </div>
        </div>
        <div className="seg buttons">
          <button className={mode === "overlay" ? "on" : ""} onClick={() => setMode("overlay")}>
            overlaid
          </button>
          <button className={mode === "side" ? "on" : ""} onClick={() => setMode("side")}>
            side by side
          </button>
        </div>
      </section>
      <div className="compare-cards">
        <RunCard r={A} label="A" color={RUN_COLORS[0]} />
        <RunCard r={B} label="B" color={RUN_COLORS[1]} />
      </div>
      <div className={`workbench ${mode === "side" ? "wide" : ""}`}>
        <section className="stage">
          {mode === "overlay" ? (
            <Player
              key="overlay"
              ref={pa}
              src={A.video_url}
              runs={[
                { id: A.id, detections: A.detections, frames: A.frames },
                { id: B.id, detections: B.detections, frames: B.frames },
              ]}
              visible={visible}
              onClasses={setSeen}
              {...playerProps}
            />
          ) : (
            <div className="side-by-side">
              <Player
                key="side-a"
                ref={pa}
                src={A.video_url}
                runs={[{ id: A.id, detections: A.detections, frames: A.frames }]}
                colors={[RUN_COLORS[0]]}
                tags={["A "]}
                trails={false}
                onClasses={setSeen}
                {...playerProps}
              />
              <Player
                key="side-b"
                ref={pb}
                src={B.video_url}
                runs={[{ id: B.id, detections: B.detections, frames: B.frames }]}
                colors={[RUN_COLORS[1]]}
                tags={["B "]}
                trails={false}
                {...playerProps}
              />
            </div>
          )}
        </section>
        <aside className="side">
          <section>
            <h3>Show</h3>
            <div className="toggles">
              {["A", "B"].map((l, i) => (
                <label key={l}>
                  <input
                    type="checkbox"
                    checked={show[i]}
                    disabled={mode === "side"}
                    onChange={(e) => setShow(show.map((s, j) => (j === i ? e.target.checked : s)))}
                  />{" "}
                  <span className="run-badge" style={{ background: RUN_COLORS[i] }}>
                    {l}
                  </span>{" "}
                  run {i === 0 ? A.id : B.id}
                </label>
              ))}
            </div>
            <h3>Filters</h3>
            <FilterPanel classes={seen} filters={filters} setFilters={setFilters} />
          </section>
          <section>
            <h3>Metrics against ground truth</h3>
            {q.data && (q.data.evals_a || q.data.evals_b) ? (
              <>
                <MetricsCompare a={q.data.evals_a ?? null} b={q.data.evals_b ?? null} colors={RUN_COLORS} />
                <p className="muted small">
                  A: {q.data.evals_a ? q.data.evals_a.gt : "not evaluated"} · B: {q.data.evals_b ? q.data.evals_b.gt : "not evaluated"}
                </p>
              </>
            ) : (
              <p className="muted small">Neither run is evaluated; evaluate them on their run pages.</p>
            )}
            {q.data && (
              <p className="muted small">
                {q.data.frames_disagreeing.toLocaleString()} of {q.data.frames_compared.toLocaleString()} frames disagree (IoU ≥ 0.5, same class).
              </p>
            )}
          </section>
        </aside>
      </div>
      <section>
        <h3>Frames where they disagree most</h3>
        {!q.data && <p className="muted">Comparing…</p>}
        {q.data && (
          <table className="compact clickable disagreements" data-testid="disagreements">
            <thead>
              <tr>
                <th className="num">frame</th>
                <th className="num">time</th>
                <th className="num">disagreement</th>
                <th className="num">
                  <span className="run-badge" style={{ background: RUN_COLORS[0] }}>A</span> boxes
                </th>
                <th className="num">
                  <span className="run-badge" style={{ background: RUN_COLORS[1] }}>B</span> boxes
                </th>
                <th className="num">only A</th>
                <th className="num">only B</th>
                <th className="num">matched</th>
                <th className="num">mean IoU</th>
              </tr>
            </thead>
            <tbody>
              {q.data.frames.map((f) => (
                <tr key={f.frame} data-frame={f.frame} className={selected === f.frame ? "selected" : ""} onClick={() => seek(f.frame)}>
                  <td className="num">{f.frame}</td>
                  <td className="num">{f.t.toFixed(2)} s</td>
                  <td className="num">
                    <b>{f.disagreement}</b>
                  </td>
                  <td className="num">{f.a_count}</td>
                  <td className="num">{f.b_count}</td>
                  <td className="num">{f.only_a}</td>
                  <td className="num">{f.only_b}</td>
                  <td className="num">{f.matched}</td>
                  <td className="num">{f.mean_iou != null ? f.mean_iou.toFixed(2) : "–"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {q.data && !q.data.frames.length && <p className="muted">The two runs agree on every frame.</p>}
      </section>
    </div>
  );
}
