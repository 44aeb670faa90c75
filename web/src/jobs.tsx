import { useEffect, useRef, useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, followJob, Job, TERMINAL, uploadJob } from "./api";

export function Progress({ job }: { job: Job }) {
  const pct = Math.round((job.state === "done" ? 1 : job.progress) * 100);
  return (
    <div className="progress" title={`${pct}%`}>
      <div className={`bar ${job.state}`} style={{ width: `${pct}%` }} />
      <span>
        {job.state === "running" && job.frames_done > 0
          ? `${job.frames_done}${job.frames_total ? `/${job.frames_total}` : ""} frames`
          : `${pct}%`}
      </span>
    </div>
  );
}

/// Live progress: active jobs follow their SSE stream and write each update
/// into the query cache; finished jobs need nothing.
function useLiveJobs(jobs: Job[]) {
  const qc = useQueryClient();
  const active = jobs.filter((j) => !TERMINAL.includes(j.state)).map((j) => j.id).slice(0, 8);
  const key = active.join(",");
  useEffect(() => {
    const stops = active.map((id) =>
      followJob(id, (j) => {
        qc.setQueryData<{ items: Job[] }>(["jobs"], (old) =>
          old ? { ...old, items: old.items.map((o) => (o.id === j.id ? j : o)) } : old,
        );
        qc.setQueryData(["job", j.id], j);
      }),
    );
    return () => stops.forEach((s) => s());
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);
}

export function JobList() {
  const q = useQuery({ queryKey: ["jobs"], queryFn: () => api.jobs(), refetchInterval: 5000 });
  const jobs = q.data?.items ?? [];
  useLiveJobs(jobs);
  if (q.error) return <p className="error">{String(q.error.message)}</p>;
  return (
    <section>
      <h2>Jobs</h2>
      <table className="jobs">
        <thead>
          <tr>
            <th>id</th>
            <th>video</th>
            <th>model</th>
            <th>state</th>
            <th>progress</th>
            <th>fps</th>
            <th>run</th>
          </tr>
        </thead>
        <tbody>
          {jobs.map((j) => (
            <tr key={j.id} data-job={j.id} data-state={j.state}>
              <td>
                <a href={`#/jobs/${j.id}`}>{j.id}</a>
              </td>
              <td className="ellipsis" title={j.video}>
                {j.video_name}
              </td>
              <td className="ellipsis muted" title={j.model}>
                {j.model}
              </td>
              <td className={`state ${j.state}`}>{j.state}</td>
              <td>
                <Progress job={j} />
              </td>
              <td>{j.fps ? j.fps.toFixed(1) : ""}</td>
              <td>{j.run_id ? <a href={`#/runs/${j.run_id}`}>run {j.run_id}</a> : ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {jobs.length === 0 && !q.isLoading && <p>No jobs yet.</p>}
    </section>
  );
}

function fmtBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MB`;
  return `${Math.max(1, Math.round(n / 1024))} KB`;
}

/// A new job: a video from the media root or an uploaded file (with a
/// progress bar), and the model from the server's model folder.
export function SubmitForm() {
  const qc = useQueryClient();
  const videos = useQuery({ queryKey: ["videos"], queryFn: api.videos });
  const models = useQuery({ queryKey: ["models"], queryFn: api.models });
  const [source, setSource] = useState<"media" | "upload">("media");
  const [video, setVideo] = useState("");
  const [file, setFile] = useState<File | null>(null);
  const [model, setModel] = useState("");
  const [params, setParams] = useState('{"end": 2}');
  const [priority, setPriority] = useState(0);
  const [msg, setMsg] = useState("");
  const [upload, setUpload] = useState<{ sent: number; total: number } | null>(null);
  const abort = useRef<(() => void) | null>(null);
  const done = (r: { id: number; state: string; cached: boolean }) => {
    setMsg(r.cached ? `identical job #${r.id} (${r.state})` : `queued job #${r.id}`);
    qc.invalidateQueries({ queryKey: ["jobs"] });
  };
  const submit = useMutation({
    mutationFn: async () => {
      let p: Record<string, unknown>;
      try {
        p = JSON.parse(params || "{}");
      } catch {
        throw new Error("params: not JSON");
      }
      if (source === "media") return api.submit({ video, params: p, priority, model: model || undefined });
      const u = uploadJob(file!, { params: JSON.stringify(p), priority, model: model || undefined }, (sent, total) =>
        setUpload({ sent, total }),
      );
      abort.current = u.abort;
      setUpload({ sent: 0, total: file!.size });
      try {
        return await u.promise;
      } finally {
        abort.current = null;
      }
    },
    onSuccess: (r) => {
      setUpload(null);
      done(r);
    },
    onError: (e) => {
      setUpload(null);
      setMsg(`error: ${e.message}`);
    },
  });
  useEffect(() => {
    if (!video && videos.data?.length) setVideo(videos.data[0].path);
  }, [videos.data, video]);
  const pct = upload ? Math.round((upload.sent / Math.max(1, upload.total)) * 100) : 0;
  return (
    <section>
      <h2>New job</h2>
      <form
        className="submit"
        onSubmit={(e) => {
          e.preventDefault();
          setMsg("");
          submit.mutate();
        }}
      >
        <div className="seg">
          <label>
            <input type="radio" name="source" checked={source === "media"} onChange={() => setSource("media")} /> media root
          </label>
          <label>
            <input type="radio" name="source" checked={source === "upload"} onChange={() => setSource("upload")} /> upload
          </label>
        </div>
        {source === "media" ? (
          <label>
            video{" "}
            <select name="video" value={video} onChange={(e) => setVideo(e.target.value)}>
              {(videos.data ?? []).map((v) => (
                <option key={v.path} value={v.path}>
                  {v.name}
                </option>
              ))}
            </select>
          </label>
        ) : (
          <label>
            file
            <input name="file" type="file" accept="video/*,.mkv,.avi,.ts" onChange={(e) => setFile(e.target.files?.[0] ?? null)} />
          </label>
        )}
        <label>
          model
          <select name="model" value={model} onChange={(e) => setModel(e.target.value)}>
            <option value="">server default</option>
            {(models.data ?? []).map((m) => (
              <option key={m.path} value={m.path}>
                {m.path}
                {m.family ? ` (${m.family})` : ""} · {fmtBytes(m.size)}
              </option>
            ))}
          </select>
        </label>
        <label>
          params (JSON, CLI flag names)
          <input name="params" value={params} onChange={(e) => setParams(e.target.value)} />
        </label>
        <label>
          priority
          <input name="priority" type="number" value={priority} onChange={(e) => setPriority(Number(e.target.value))} />
        </label>
        <button type="submit" disabled={submit.isPending || (source === "media" ? !video : !file)}>
          {source === "upload" ? "Upload and analyse" : "Analyse"}
        </button>
        <span className="msg">{msg}</span>
      </form>
      {upload && (
        <div className="upload" data-testid="upload-progress" data-pct={pct}>
          <div className="progress wide">
            <div className="bar" style={{ width: `${pct}%` }} />
            <span>
              {pct < 100 ? `uploading ${fmtBytes(upload.sent)} of ${fmtBytes(upload.total)} · ${pct}%` : "received; probing the video…"}
            </span>
          </div>
          {pct < 100 && (
            <button className="link" onClick={() => abort.current?.()}>
              cancel
            </button>
          )}
        </div>
      )}
    </section>
  );
}
