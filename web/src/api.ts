// Typed client for the Peregrine API. Every wire type comes from the
// server's OpenAPI document (`peregrine openapi`), turned into TypeScript
// by openapi-typescript at build time (src/gen/schema.d.ts, not committed;
// scripts/setup-web.sh writes it). The token (if the server has one) is kept
// in localStorage and sent as `Authorization: Bearer`.
import type { components, paths } from "./gen/schema";

type Schemas = components["schemas"];

/// The JSON body of the 200 (or 201) answer of `M` on path `P`.
type Ok<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends { responses: infer R }
  ? R extends { 200: { content: { "application/json": infer T } } }
    ? T
    : R extends { 201: { content: { "application/json": infer T } } }
      ? T
      : never
  : never;

export type Job = Schemas["JobView"];
export type JobState = Job["state"];
export type Detection = Schemas["DetectionItem"];
export type Track = Schemas["TrackView"];
export type Video = Schemas["VideoItem"];
export type RunSummary = Schemas["RunSummary"];
export type RunPage = Schemas["RunPage"];
export type ModelItem = Schemas["ModelItem"];
export type Timeline = Schemas["TimelineBody"];
export type EvalView = Schemas["EvalView"];
export type MatchPage = Schemas["MatchPageBody"];
export type Match = MatchPage["items"][number];
export type MatchKind = "tp" | "fp" | "fn" | "idsw";
export type ErrorPage = Schemas["ErrorPageBody"];
export type ErrorFrame = ErrorPage["items"][number];
export type Compare = Schemas["CompareBody"];
export type CompareFrame = Compare["frames"][number];

export interface StageSummary {
  count: number;
  mean_ms: number;
  p50_ms: number;
  p95_ms: number;
  max_ms: number;
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

/// `GET /api/v1/runs/{id}/counts`: the document `peregrine counts --json`
/// prints (the OpenAPI document types it as an untyped object).
export interface Counts {
  run_id: number;
  interval_s: number;
  lines: LineCounts[];
  zones: ZoneCounts[];
  intervals: { start_s: number; end_s: number; frames: number; lines: LineCounts[]; zones: ZoneCounts[] }[];
}

export const TERMINAL: JobState[] = ["done", "failed", "cancelled"];

export function getToken(): string {
  return localStorage.getItem("peregrine-token") ?? "";
}

export function setToken(t: string) {
  localStorage.setItem("peregrine-token", t);
}

export function headers(extra: Record<string, string> = {}): Record<string, string> {
  const t = getToken();
  return t ? { ...extra, Authorization: `Bearer ${t}` } : extra;
}

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
  ) {
    super(message);
  }
}

async function errorOf(r: Response): Promise<ApiError> {
  let msg = r.statusText;
  try {
    msg = (await r.json()).error ?? msg;
  } catch {
    /* not JSON */
  }
  return new ApiError(r.status, msg);
}

async function call<T>(path: string, init: RequestInit = {}): Promise<T> {
  const r = await fetch(path, { ...init, headers: headers(init.headers as Record<string, string>) });
  if (!r.ok) throw await errorOf(r);
  if (r.status === 204) return undefined as T;
  return r.json() as Promise<T>;
}

function qs(params: Record<string, string | number | null | undefined>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : "";
}

export interface RunFilter {
  video?: string;
  model?: string;
  status?: string;
  since?: string;
  until?: string;
  sort?: string;
}

const json = (body: unknown): RequestInit => ({
  method: "POST",
  body: JSON.stringify(body),
  headers: { "Content-Type": "application/json" },
});

export const api = {
  jobs: (state?: string) =>
    call<Ok<"/api/v1/jobs", "get">>(`/api/v1/jobs?limit=100${state ? `&state=${state}` : ""}`),
  job: (id: number) => call<Job>(`/api/v1/jobs/${id}`),
  submit: (body: { video: string; params: Record<string, unknown>; priority: number; model?: string }) =>
    call<Schemas["JobCreated"]>("/api/v1/jobs", json(body)),
  cancel: (id: number) => call<Job>(`/api/v1/jobs/${id}/cancel`, { method: "POST" }),
  runs: (f: RunFilter, cursor: string | null, limit = 50) =>
    call<RunPage>(`/api/v1/runs${qs({ limit, cursor, ...f })}`),
  run: (id: number) => call<RunSummary>(`/api/v1/runs/${id}`),
  deleteRun: (id: number) => call<void>(`/api/v1/runs/${id}`, { method: "DELETE" }),
  timeline: (id: number, bins: number, f: { class?: string; track?: number | null; min_score?: number }) =>
    call<Timeline>(`/api/v1/runs/${id}/timeline${qs({ bins, class: f.class, track: f.track, min_score: f.min_score || null })}`),
  framesIndex: (id: number) =>
    call<Schemas["FramesIndex"]>(
      `/api/v1/runs/${id}/frames_index`,
    ),
  tracks: (id: number) => call<Track[]>(`/api/v1/runs/${id}/tracks`),
  /// `null` for a run analysed without lines or zones.
  counts: (id: number) =>
    call<Counts>(`/api/v1/runs/${id}/counts`).catch((e) => {
      if (e instanceof ApiError && e.status === 404) return null;
      throw e;
    }),
  videos: () => call<Video[]>("/api/v1/videos"),
  models: () => call<ModelItem[]>("/api/v1/models"),
  detections: (
    run: number,
    cursor: string | null,
    limit = 1000,
    f: { frame_from?: number; frame_to?: number; class?: string; track?: number | null } = {},
    signal?: AbortSignal,
  ) =>
    call<Ok<"/api/v1/runs/{id}/detections", "get">>(
      `/api/v1/runs/${run}/detections${qs({ limit, cursor, ...f })}`,
      { signal },
    ),
  evals: (run: number) => call<EvalView[]>(`/api/v1/runs/${run}/evals`),
  evaluate: (run: number, body: { gt: string; format: string; iou?: number; force?: boolean }) =>
    call<EvalView>(`/api/v1/runs/${run}/evals`, json(body)),
  evaluateUpload: (run: number, file: File, format: string, iou?: number, force?: boolean) => {
    const fd = new FormData();
    fd.set("format", format);
    if (iou !== undefined) fd.set("iou", String(iou));
    if (force) fd.set("force", "true");
    fd.set("gt", file);
    return call<EvalView>(`/api/v1/runs/${run}/evals`, { method: "POST", body: fd });
  },
  matches: (evalId: number, frameFrom: number, frameTo: number, cursor: string | null, signal?: AbortSignal) =>
    call<MatchPage>(
      `/api/v1/evals/${evalId}/matches${qs({ frame_from: frameFrom, frame_to: frameTo, cursor, limit: 5000 })}`,
      { signal },
    ),
  errors: (evalId: number, cursor: string | null, limit = 50) =>
    call<ErrorPage>(`/api/v1/evals/${evalId}/errors${qs({ limit, cursor })}`),
  compare: (a: number, b: number, limit = 200) => call<Compare>(`/api/v1/compare${qs({ a, b, limit })}`),
  whoami: () => call<Schemas["WhoAmI"]>("/api/v1/whoami"),
};

/// Uploads a video as a job (multipart, field `file`) with XMLHttpRequest,
/// whose upload events report progress (fetch has none). Resolves with the
/// created job.
export function uploadJob(
  file: File,
  fields: { params: string; priority: number; model?: string },
  onProgress: (sent: number, total: number) => void,
): { promise: Promise<Schemas["JobCreated"]>; abort: () => void } {
  const xhr = new XMLHttpRequest();
  const promise = new Promise<Schemas["JobCreated"]>((resolve, reject) => {
    const fd = new FormData();
    if (fields.model) fd.set("model", fields.model);
    fd.set("params", fields.params || "{}");
    fd.set("priority", String(fields.priority));
    fd.set("file", file);
    xhr.open("POST", "/api/v1/jobs");
    for (const [k, v] of Object.entries(headers())) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.onload = () => {
      let body: { error?: string } = {};
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON */
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body as Schemas["JobCreated"]);
      else reject(new ApiError(xhr.status, body.error ?? xhr.statusText));
    };
    xhr.onerror = () => reject(new ApiError(0, "network error"));
    xhr.onabort = () => reject(new ApiError(0, "upload cancelled"));
    xhr.send(fd);
  });
  return { promise, abort: () => xhr.abort() };
}

/// Follows a job's Server-Sent Events with fetch (EventSource cannot send
/// the Authorization header). Returns a function that stops it.
export function followJob(id: number, onJob: (j: Job) => void): () => void {
  return followSse(`/api/v1/jobs/${id}/events`, null, (d) => onJob(d as Job));
}

function followSse(path: string, event: string | null, on: (data: unknown) => void): () => void {
  const ctl = new AbortController();
  (async () => {
    try {
      const r = await fetch(path, { headers: headers(), signal: ctl.signal });
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
          if (event && !block.split("\n").includes(`event: ${event}`)) continue;
          const data = block
            .split("\n")
            .filter((l) => l.startsWith("data:"))
            .map((l) => l.slice(5).trim())
            .join("\n");
          if (data) on(JSON.parse(data));
        }
      }
    } catch {
      /* aborted or network error: polling takes over */
    }
  })();
  return () => ctl.abort();
}

/// A live stream with its counters (`GET /api/v1/streams`).
export type LiveStream = Schemas["StreamView"];

export const streamsApi = {
  list: () => call<LiveStream[]>("/api/v1/streams"),
  create: (body: { name: string; source: string; fps: number; priority: boolean }) =>
    call<LiveStream>("/api/v1/streams", json(body)),
  remove: (name: string) => call<LiveStream>(`/api/v1/streams/${encodeURIComponent(name)}`, { method: "DELETE" }),
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
  return followSse("/api/v1/streams/events", "streams", (d) => on(d as LiveStream[]));
}

/// Seconds as `m:ss.t`.
export function clock(s: number): string {
  if (!Number.isFinite(s)) return "–";
  const m = Math.floor(s / 60);
  return `${m}:${(s - m * 60).toFixed(1).padStart(4, "0")}`;
}

/// Display name of a path: its last component.
export function baseName(p: string): string {
  return p.split("/").pop() ?? p;
}
