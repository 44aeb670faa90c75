import { forwardRef, useEffect, useImperativeHandle, useRef, useState } from "react";
import { api, clock, Detection, Match, MatchKind } from "./api";
import {
  drawDetections,
  drawMatches,
  Filters,
  FrameClock,
  Hit,
  MATCH_STYLE,
  RUN_COLORS,
  trails,
  WindowCache,
} from "./overlay";

export interface PlayerHandle {
  seek: (frame: number) => void;
  pause: () => void;
  video: () => HTMLVideoElement | null;
}

export interface PlayerRun {
  id: number;
  detections: number;
  frames: number;
}

interface Props {
  /// Where the <video> plays the (first) run's video (`video_url`).
  src: string;
  /// One run, or two (a comparison: drawn in two colours, A over B).
  runs: PlayerRun[];
  width: number;
  height: number;
  fps: number;
  frames: number;
  filters: Filters;
  /// Colour by evaluation match (TP/FP/FN/ID switch) instead of by track.
  evalId?: number | null;
  trails?: boolean;
  labels?: boolean;
  /// Fixed colours and label prefixes per run (a comparison).
  colors?: string[];
  tags?: string[];
  /// Runs drawn (all when absent).
  visible?: boolean[];
  onFrame?: (frame: number) => void;
  onFrameData?: (frame: number, dets: Detection[][], matches: Match[] | null) => void;
  onPick?: (hit: Hit) => void;
  onClasses?: (classes: string[]) => void;
  children?: React.ReactNode;
}

const DETS_PER_WINDOW = 3000;
const MAX_WINDOWS = 12;

function windowFrames(detections: number, frames: number): number {
  const per = frames > 0 ? detections / frames : 1;
  return Math.max(8, Math.min(512, Math.round(DETS_PER_WINDOW / Math.max(per, 1))));
}

async function allPages<T>(first: (cursor: string | null) => Promise<{ items: T[]; next_cursor?: string | null }>) {
  const out: T[] = [];
  let cursor: string | null = null;
  for (;;) {
    const p = await first(cursor);
    out.push(...p.items);
    if (!p.next_cursor) return out;
    cursor = p.next_cursor;
  }
}


/// The run's video with its results drawn on a canvas in sync: each
/// presented video frame (requestVideoFrameCallback, or animation frames
/// where it is missing) maps its media time to the stored frame and draws
/// that frame's detections from a bounded cache of frame windows fetched
/// ahead of the playhead.
export const Player = forwardRef<PlayerHandle, Props>(function Player(props, ref) {
  const { runs, width, height, fps, frames } = props;
  const videoRef = useRef<HTMLVideoElement>(null);
  const canvasRef = useRef<HTMLCanvasElement>(null);
  const src = props.src;
  const [videoError, setVideoError] = useState("");
  const [playing, setPlaying] = useState(false);
  const [frame, setFrame] = useState(0);
  const [rate, setRate] = useState(1);
  const [dataError, setDataError] = useState("");
  const clockRef = useRef(new FrameClock(fps || 25, frames));
  // The last analysed frame's index (from the frames index once loaded:
  // a run analysed at a lower rate skips frames).
  const [lastFrame, setLastFrame] = useState(Math.max(0, frames - 1));
  const propsRef = useRef(props);
  propsRef.current = props;
  const hitsRef = useRef<Hit[]>([]);
  const drawRef = useRef<(t: number) => void>(() => {});
  const lastUi = useRef(0);
  const classesSeen = useRef(new Set<string>());

  // Detection caches, one per run, and one for the evaluation's matches.
  const caches = useRef<WindowCache<Detection>[]>([]);
  const matchCache = useRef<WindowCache<Match> | null>(null);
  const runKey = runs.map((r) => r.id).join(",");
  useEffect(() => {
    const redraw = () => drawRef.current(videoRef.current?.currentTime ?? 0);
    caches.current = runs.map(
      (r) =>
        new WindowCache<Detection>(
          async (from, to, signal) => {
            const items = await allPages((c) =>
              api.detections(r.id, c, 10000, { frame_from: from, frame_to: to }, signal),
            );
            let fresh = false;
            for (const d of items)
              if (!classesSeen.current.has(d.class)) (classesSeen.current.add(d.class), (fresh = true));
            if (fresh) propsRef.current.onClasses?.([...classesSeen.current].sort());
            return items;
          },
          windowFrames(r.detections, r.frames),
          MAX_WINDOWS,
          redraw,
        ),
    );
    redraw();
    return () => caches.current.forEach((c) => c.dispose());
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [runKey]);

  const evalId = props.evalId ?? null;
  useEffect(() => {
    if (evalId === null) {
      matchCache.current = null;
      drawRef.current(videoRef.current?.currentTime ?? 0);
      return;
    }
    const r = runs[0];
    const c = new WindowCache<Match>(
      (from, to, signal) => allPages((cur) => api.matches(evalId, from, to, cur, signal)),
      windowFrames(r.detections * 1.5, r.frames),
      MAX_WINDOWS,
      () => drawRef.current(videoRef.current?.currentTime ?? 0),
    );
    matchCache.current = c;
    drawRef.current(videoRef.current?.currentTime ?? 0);
    return () => c.dispose();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [evalId, runKey]);

  // The exact time of every analysed frame (and the offset of the video's
  // clock), once loaded; the frame rate maps until then.
  useEffect(() => {
    let live = true;
    setVideoError("");
    api
      .framesIndex(runs[0].id)
      .then((ix) => {
        if (!live) return;
        clockRef.current.setIndex({ frame: ix.frame, t: ix.t }, ix.t_offset ?? 0);
        if (ix.frame.length) {
          const last = ix.frame[ix.frame.length - 1];
          clockRef.current.frames = last + 1;
          setLastFrame(last);
        }
        drawRef.current(videoRef.current?.currentTime ?? 0);
      })
      .catch(() => {});
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [runs[0].id]);

  useEffect(() => {
    clockRef.current.fps = fps || 25;
    clockRef.current.frames = frames;
  }, [fps, frames]);

  // The painter.
  drawRef.current = (time: number) => {
    const canvas = canvasRef.current;
    const video = videoRef.current;
    if (!canvas) return;
    const ctx = canvas.getContext("2d");
    if (!ctx) return;
    const p = propsRef.current;
    const f = clockRef.current.frameAt(time);
    const scale = canvas.width / Math.max(1, canvas.clientWidth);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const dets: Detection[][] = [];
    let hits: Hit[] = [];
    let loaded = true;
    let matches: Match[] | null = null;
    const mc = matchCache.current;
    if (mc) {
      mc.ensure(f);
      const ms = mc.get(f);
      if (ms === undefined) loaded = false;
      else {
        matches = ms;
        const r = drawMatches(ctx, ms, p.filters, { scale, labels: p.labels !== false });
        hits = r.hits;
      }
    }
    caches.current.forEach((c, i) => {
      c.ensure(f, video && !video.paused ? 3 : 1);
      const ds = c.get(f);
      if (ds === undefined) {
        loaded = false;
        dets.push([]);
        return;
      }
      dets.push(ds);
      if (mc || p.visible?.[i] === false) return;
      const two = caches.current.length > 1;
      hits = hits.concat(
        drawDetections(ctx, ds, p.filters, {
          scale,
          labels: p.labels !== false,
          color: p.colors?.[i] ?? (two ? RUN_COLORS[i] : undefined),
          tag: p.tags?.[i] ?? (two ? (i === 0 ? "A " : "B ") : undefined),
          trails: !two && p.trails !== false ? trails(c, f, 24) : undefined,
        }),
      );
    });
    hitsRef.current = hits;
    const err = caches.current.find((c) => c.errors)?.lastError ?? mc?.lastError ?? "";
    canvas.dataset.frame = String(f);
    canvas.dataset.mediaTime = time.toFixed(4);
    canvas.dataset.drawn = String(hits.length);
    canvas.dataset.loaded = String(loaded);
    canvas.dataset.windows = String(caches.current.reduce((n, c) => n + c.windows, 0));
    const now = performance.now();
    const playingNow = video ? !video.paused : false;
    if (!playingNow || now - lastUi.current > 120) {
      lastUi.current = now;
      setFrame(f);
      if (err) setDataError(err);
      p.onFrame?.(f);
      if (loaded) p.onFrameData?.(f, dets, matches);
    }
  };

  // Redraw when filters or display options change.
  useEffect(() => {
    drawRef.current(videoRef.current?.currentTime ?? 0);
  }, [props.filters, props.trails, props.labels, props.visible]);

  // The sync loop: one draw per presented video frame.
  useEffect(() => {
    const v = videoRef.current;
    if (!v) return;
    let stop = false;
    let handle = 0;
    const hasVfc = "requestVideoFrameCallback" in HTMLVideoElement.prototype;
    const onVfc = (_now: number, meta: { mediaTime: number }) => {
      if (stop) return;
      drawRef.current(meta.mediaTime);
      handle = v.requestVideoFrameCallback(onVfc);
    };
    const onRaf = () => {
      if (stop) return;
      drawRef.current(v.currentTime);
      if (!v.paused) handle = requestAnimationFrame(onRaf);
    };
    if (hasVfc) handle = v.requestVideoFrameCallback(onVfc);
    const onPlay = () => {
      setPlaying(true);
      if (!hasVfc) handle = requestAnimationFrame(onRaf);
    };
    const onPause = () => {
      setPlaying(false);
      drawRef.current(v.currentTime);
    };
    const onSeeked = () => drawRef.current(v.currentTime);
    v.addEventListener("play", onPlay);
    v.addEventListener("pause", onPause);
    v.addEventListener("seeked", onSeeked);
    v.addEventListener("loadeddata", onSeeked);
    return () => {
      stop = true;
      if (hasVfc) v.cancelVideoFrameCallback(handle);
      else cancelAnimationFrame(handle);
      v.removeEventListener("play", onPlay);
      v.removeEventListener("pause", onPause);
      v.removeEventListener("seeked", onSeeked);
      v.removeEventListener("loadeddata", onSeeked);
    };
  }, [src]);

  const seek = (f: number) => {
    const v = videoRef.current;
    if (!v) return;
    const fr = Math.max(0, Math.min(lastFrame, f));
    v.currentTime = clockRef.current.timeOf(fr);
    setFrame(fr);
  };
  const step = (dir: 1 | -1) => {
    const v = videoRef.current;
    if (!v) return;
    v.pause();
    seek(clockRef.current.step(clockRef.current.frameAt(v.currentTime), dir));
  };
  const toggle = () => {
    const v = videoRef.current;
    if (!v) return;
    if (v.paused) v.play().catch(() => {});
    else v.pause();
  };
  useImperativeHandle(ref, () => ({ seek, pause: () => videoRef.current?.pause(), video: () => videoRef.current }));

  // Keyboard: ←/→ one frame, space plays or pauses (not while typing).
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement;
      if (e.ctrlKey || e.metaKey || e.altKey || t.closest("input, select, textarea, [contenteditable]")) return;
      if (e.key === "ArrowRight") step(1);
      else if (e.key === "ArrowLeft") step(-1);
      else if (e.key === " ") toggle();
      else return;
      e.preventDefault();
    };
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  });

  useEffect(() => {
    if (videoRef.current) videoRef.current.playbackRate = rate;
  }, [rate, src]);

  const onCanvasClick = (e: React.MouseEvent<HTMLCanvasElement>) => {
    const c = e.currentTarget;
    const r = c.getBoundingClientRect();
    const x = ((e.clientX - r.left) / r.width) * c.width;
    const y = ((e.clientY - r.top) / r.height) * c.height;
    const inside = hitsRef.current
      .filter((h) => x >= h.x1 && x <= h.x2 && y >= h.y1 && y <= h.y2)
      .sort((a, b) => (a.x2 - a.x1) * (a.y2 - a.y1) - (b.x2 - b.x1) * (b.y2 - b.y1));
    if (inside[0]) props.onPick?.(inside[0]);
  };

  const time = frame / (fps || 25);
  return (
    <div className="player" data-testid="player">
      <div
        className="screen"
        style={{ aspectRatio: `${width} / ${height}`, width: `min(100%, calc(66vh * ${(width / Math.max(1, height)).toFixed(4)}))` }}
      >
        {(
          <video
            ref={videoRef}
            src={src}
            preload="auto"
            muted
            playsInline
            onError={() => setVideoError("the browser cannot play this video")}
            onClick={toggle}
          />
        )}
        <canvas
          ref={canvasRef}
          width={width}
          height={height}
          data-testid="overlay"
          onClick={onCanvasClick}
          title="click a box to follow its track"
        />
        {videoError && <p className="screen-msg error">Video: {videoError}</p>}

      </div>
      <div className="controls" onMouseDown={(e) => (e.target as HTMLElement).tagName === "BUTTON" && e.preventDefault()}>
        <button className="icon" onClick={() => step(-1)} title="previous frame (←)" aria-label="previous frame">
          ◀︎
        </button>
        <button className="play" onClick={toggle} title="play / pause (space)" data-testid="play">
          {playing ? "Pause" : "Play"}
        </button>
        <button className="icon" onClick={() => step(1)} title="next frame (→)" aria-label="next frame">
          ▶︎
        </button>
        <input
          type="range"
          className="scrub"
          min={0}
          max={lastFrame}
          value={frame}
          onChange={(e) => seek(Number(e.target.value))}
          aria-label="scrub"
          data-testid="scrub"
        />
        <span className="readout" data-testid="frame-readout">
          frame <b>{frame}</b> / {lastFrame} · {clock(time)}
        </span>
        <select value={rate} onChange={(e) => setRate(Number(e.target.value))} aria-label="speed">
          {[0.25, 0.5, 1, 2, 4].map((r) => (
            <option key={r} value={r}>
              {r}×
            </option>
          ))}
        </select>
      </div>
      {dataError && <p className="error small">detections: {dataError}</p>}
      {props.children}
    </div>
  );
});

/// The legend of the evaluation colours, with this frame's counts.
export function MatchLegend({ counts }: { counts?: Record<MatchKind, number> | null }) {
  return (
    <div className="legend" data-testid="legend">
      {(Object.keys(MATCH_STYLE) as MatchKind[]).map((k) => (
        <span key={k} className="legend-item">
          <i className={`swatch ${k}`} style={{ borderColor: MATCH_STYLE[k].color }} />
          {MATCH_STYLE[k].label}
          {counts ? <b>{counts[k]}</b> : null}
        </span>
      ))}
    </div>
  );
}
