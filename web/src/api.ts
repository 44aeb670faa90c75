// Typed client for the Peregrine API. The token (if the server has one)
// is kept in localStorage and sent as `Authorization: Bearer`.

export type JobState = "queued" | "running" | "done" | "failed" | "cancelled";

export interface StageSummary {
  count: number;
  mean_ms: number;
  p50_ms: number;
  p95_ms: number;
  max_ms: number;
}

export interface Job {
  id: number;
  state: JobState;
  progress: number;
  fps: number | null;
  eta_s: number | null;
  frames_done: number;
  frames_total: number;
  run_id: number | null;
  run_status: string | null;
  cache_hit: boolean;
  error: string | null;
  video: string;
  model: string;
  params: Record<string, unknown>;
  priority: number;
  attempts: number;
  timings: Record<string, StageSummary> | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
}

export interface Detection {
  frame: number;
  t: number;
  class: string;
  class_id: number;
  score: number;
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  track_id: number | null;
}

export interface Track {
  track_id: number;
  class: string;
  frames: number;
  first_frame: number;
  last_frame: number;
  first_t: number;
  last_t: number;
  mean_score: number;
  path_px: number;
  mean_speed: number;
}

export interface Run {
  id: number;
  video_path: string;
  status: string;
  frames: number;
  detections: number;
  tracks: number;
  width: number;
  height: number;
  video_fps: number;
}

export interface LineCounts {
  name: string;
  in: number;
  out: number;
  by_class: Record<string, { in: number; out: number }>;
}

export interface ZoneCounts {
  name: string;
  max: number;
  mean: number;
  entries: number;
  exits: number;
  dwell_s: { mean: number | null; max: number | null };
}

/// `GET /api/v1/runs/{id}/counts`: the document `peregrine counts --json` prints.
export interface Counts {
  run_id: number;
  interval_s: number;
  lines: LineCounts[];
  zones: ZoneCounts[];
  intervals: { start_s: number; end_s: number; frames: number; lines: LineCounts[]; zones: ZoneCounts[] }[];
}

export interface Video {
  path: string;
  name: string;
  size: number;
}

export const TERMINAL: JobState[] = ["done", "failed", "cancelled"];

export function getToken(): string {
  return localStorage.getItem("peregrine-token") ?? "";
}

export function setToken(t: string) {
  localStorage.setItem("peregrine-token", t);
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const t = getToken();
  return t ? { ...extra, Authorization: `Bearer ${t}` } : extra;
}

export class ApiError extends Error {
  constructor(public status: number, message: string) {
    super(message);
  }
}

async function call<T>(path: string, init: RequestInit = {}): Promise<T> {
  const r = await fetch(path, { ...init, headers: headers(init.headers as Record<string, string>) });
  if (!r.ok) {
    let msg = r.statusText;
    try {
      msg = (await r.json()).error ?? msg;
    } catch {
      /* not JSON */
    }
    throw new ApiError(r.status, msg);
  }
  return r.json() as Promise<T>;
}

export const api = {
  jobs: (state?: string) =>
    call<{ items: Job[]; next_cursor: number | null }>(
      `/api/v1/jobs?limit=100${state ? `&state=${state}` : ""}`,
    ),
  job: (id: number) => call<Job>(`/api/v1/jobs/${id}`),
  submit: (body: { video: string; params: Record<string, unknown>; priority: number }) =>
    call<{ id: number; state: JobState; cached: boolean }>("/api/v1/jobs", {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "Content-Type": "application/json" },
    }),
  cancel: (id: number) => call<Job>(`/api/v1/jobs/${id}/cancel`, { method: "POST" }),
  run: (id: number) => call<Run>(`/api/v1/runs/${id}`),
  tracks: (id: number) => call<Track[]>(`/api/v1/runs/${id}/tracks`),
  /// `null` for a run analysed without lines or zones.
  counts: (id: number) =>
    call<Counts>(`/api/v1/runs/${id}/counts`).catch((e) => {
      if (e instanceof ApiError && e.status === 404) return null;
      throw e;
    }),
  videos: () => call<Video[]>("/api/v1/videos"),
  detections: (run: number, cursor: string | null, limit = 1000) =>
    call<{ items: Detection[]; next_cursor: string | null }>(
      `/api/v1/runs/${run}/detections?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
    ),
  frameUrl: async (run: number, frame: number): Promise<string> => {
    const r = await fetch(`/api/v1/runs/${run}/frames/${frame}.jpg`, { headers: headers() });
    if (!r.ok) throw new ApiError(r.status, `frame ${frame}: ${r.statusText}`);
    return URL.createObjectURL(await r.blob());
  },
};

/// Follows a job's Server-Sent Events with fetch (EventSource cannot send
/// the Authorization header). Returns a function that stops it.
export function followJob(id: number, onJob: (j: Job) => void): () => void {
  const ctl = new AbortController();
  (async () => {
    try {
      const r = await fetch(`/api/v1/jobs/${id}/events`, { headers: headers(), signal: ctl.signal });
      if (!r.ok || !r.body) return;
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i: number;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = block
            .split("\n")
            .filter((l) => l.startsWith("data:"))
            .map((l) => l.slice(5).trim())
            .join("\n");
          if (data) onJob(JSON.parse(data) as Job);
        }
      }
    } catch {
      /* aborted or network error: the list's polling takes over */
    }
  })();
  return () => ctl.abort();
}

/// A live stream with its counters (`GET /api/v1/streams`).
export interface LiveStream {
  name: string;
  source: string;
  fps: number;
  priority: boolean;
  motion_gate: boolean;
  model: string;
  created_at: number;
  state: "connecting" | "live" | "reconnecting" | "stopped" | "failed";
  frames_received: number;
  frames_analysed: number;
  frames_shed: number;
  frames_over_budget: number;
  reconnects: number;
  fps_analysed: number;
  rate_allowed: number;
  latency_ms: { p50: number; p95: number; p99: number; max: number };
  run_id: number | null;
  error: string | null;
}

export const streamsApi = {
  list: () => call<LiveStream[]>("/api/v1/streams"),
  create: (body: { name: string; source: string; fps: number; priority: boolean }) =>
    call<LiveStream>("/api/v1/streams", {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "Content-Type": "application/json" },
    }),
  remove: (name: string) =>
    call<LiveStream>(`/api/v1/streams/${encodeURIComponent(name)}`, { method: "DELETE" }),
  /// The latest annotated frame as an object URL; `null` before the first.
  frameUrl: async (name: string): Promise<string | null> => {
    const r = await fetch(`/api/v1/streams/${encodeURIComponent(name)}/frame.jpg`, { headers: headers() });
    if (!r.ok) return null;
    return URL.createObjectURL(await r.blob());
  },
};

/// Follows `GET /api/v1/streams/events` (every stream, once a second).
/// Returns a function that stops it.
export function followStreams(on: (s: LiveStream[]) => void): () => void {
  const ctl = new AbortController();
  (async () => {
    try {
      const r = await fetch("/api/v1/streams/events", { headers: headers(), signal: ctl.signal });
      if (!r.ok || !r.body) return;
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i: number;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (!block.split("\n").includes("event: streams")) continue;
          const data = block
            .split("\n")
            .filter((l) => l.startsWith("data:"))
            .map((l) => l.slice(5).trim())
            .join("\n");
          if (data) on(JSON.parse(data) as LiveStream[]);
        }
      }
    } catch {
      /* aborted or network error */
    }
  })();
  return () => ctl.abort();
}
