// The Live page: one tile per stream with its state, rates, latency and
// latest annotated frame; counters arrive over SSE once a second.
import { FormEvent, useEffect, useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { followStreams, LiveStream, streamsApi } from "./api";

/// The stream's latest annotated frame, fetched again every two seconds.
function LatestFrame({ name }: { name: string }) {
  const [url, setUrl] = useState<string | null>(null);
  useEffect(() => {
    let alive = true;
    let current: string | null = null;
    const load = async () => {
      const u = await streamsApi.frameUrl(name).catch(() => null);
      if (!alive) {
        if (u) URL.revokeObjectURL(u);
        return;
      }
      if (u) {
        if (current) URL.revokeObjectURL(current);
        current = u;
        setUrl(u);
      }
    };
    load();
    const t = setInterval(load, 2000);
    return () => {
      alive = false;
      clearInterval(t);
      if (current) URL.revokeObjectURL(current);
    };
  }, [name]);
  return url ? <img src={url} alt={`latest frame of ${name}`} /> : <div className="no-frame muted">no frame yet</div>;
}

function Tile({ s }: { s: LiveStream }) {
  const qc = useQueryClient();
  const stop = useMutation({
    mutationFn: () => streamsApi.remove(s.name),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["streams"] }),
  });
  return (
    <div className="tile" data-stream={s.name}>
      <div className="tile-head">
        <strong>{s.name}</strong> <span className={`state ${s.state}`}>{s.state}</span>
        {s.priority && <span className="muted"> priority</span>}
        <button onClick={() => stop.mutate()} disabled={stop.isPending}>
          Stop
        </button>
      </div>
      <LatestFrame name={s.name} />
      <table className="rates">
        <tbody>
          <tr>
            <td>analysed</td>
            <td className="fps-analysed">
              {s.fps_analysed.toFixed(1)} / {s.fps} fps
            </td>
            <td>frames</td>
            <td className="frames-analysed">{s.frames_analysed}</td>
          </tr>
          <tr>
            <td>received</td>
            <td>{s.frames_received}</td>
            <td>shed</td>
            <td>{s.frames_shed}</td>
          </tr>
          <tr title="undecoded: received but never decoded (decoding follows the analysed rate); gated: no motion, detector not run">
            <td>undecoded</td>
            <td>{s.frames_skipped}</td>
            <td>gated</td>
            <td>{s.frames_gated}</td>
          </tr>
          <tr>
            <td>latency</td>
            <td>
              p50 {s.latency_ms.p50.toFixed(0)} / p95 {s.latency_ms.p95.toFixed(0)} ms
            </td>
            <td>reconnects</td>
            <td>{s.reconnects}</td>
          </tr>
        </tbody>
      </table>
      <div className="muted src">
        {s.source}
        {s.run_id != null && (
          <>
            {" · "}
            <a href={`#/runs/${s.run_id}`}>run {s.run_id}</a>
          </>
        )}
      </div>
      {s.error && <div className="error">{s.error}</div>}
      {stop.error && <div className="error">{stop.error.message}</div>}
    </div>
  );
}

function AddStream() {
  const qc = useQueryClient();
  const add = useMutation({
    mutationFn: streamsApi.create,
    onSuccess: () => qc.invalidateQueries({ queryKey: ["streams"] }),
  });
  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    add.mutate({
      name: String(f.get("name")),
      source: String(f.get("source")),
      fps: Number(f.get("fps")),
      priority: f.get("priority") === "on",
    });
  };
  return (
    <section>
      <h2>Add a stream</h2>
      <form className="submit add-stream" onSubmit={submit}>
        <label>
          name
          <input name="name" placeholder="cam-1" required />
        </label>
        <label>
          source
          <input name="source" placeholder="rtsp://… or a file in a media root" required size={40} />
        </label>
        <label>
          fps
          <input name="fps" type="number" min="0.1" max="60" step="0.1" defaultValue={5} />
        </label>
        <label className="check">
          <input name="priority" type="checkbox" />
          priority
        </label>
        <button type="submit" disabled={add.isPending}>
          Start
        </button>
        {add.error && <span className="error">{add.error.message}</span>}
      </form>
    </section>
  );
}

export function LivePage() {
  const qc = useQueryClient();
  const q = useQuery({ queryKey: ["streams"], queryFn: streamsApi.list, refetchInterval: 10_000 });
  useEffect(() => followStreams((list) => qc.setQueryData(["streams"], list)), [qc]);
  return (
    <>
      <AddStream />
      <section>
        <h2>Live</h2>
        {q.error && <p className="error">{q.error.message}</p>}
        {q.data && q.data.length === 0 && <p className="muted">No streams.</p>}
        <div className="tiles">
          {q.data?.map((s) => (
            <Tile key={s.name} s={s} />
          ))}
        </div>
      </section>
    </>
  );
}
