import { useEffect, useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, followJob, Job, TERMINAL } from "./api";

function fileName(p: string) {
  return p.split("/").pop() ?? p;
}

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
              <td title={j.video}>{fileName(j.video)}</td>
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

export function SubmitForm() {
  const qc = useQueryClient();
  const videos = useQuery({ queryKey: ["videos"], queryFn: api.videos });
  const [video, setVideo] = useState("");
  const [params, setParams] = useState('{"end": 2}');
  const [priority, setPriority] = useState(0);
  const [msg, setMsg] = useState("");
  const submit = useMutation({
    mutationFn: () => api.submit({ video, params: JSON.parse(params || "{}"), priority }),
    onSuccess: (r) => {
      setMsg(r.cached ? `identical job #${r.id} (${r.state})` : `queued job #${r.id}`);
      qc.invalidateQueries({ queryKey: ["jobs"] });
    },
    onError: (e) => setMsg(`error: ${e.message}`),
  });
  useEffect(() => {
    if (!video && videos.data?.length) setVideo(videos.data[0].path);
  }, [videos.data, video]);
  return (
    <section>
      <h2>New job</h2>
      <form
        className="submit"
        onSubmit={(e) => {
          e.preventDefault();
          submit.mutate();
        }}
      >
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
        <label>
          params (JSON, CLI flag names){" "}
          <input name="params" value={params} onChange={(e) => setParams(e.target.value)} />
        </label>
        <label>
          priority{" "}
          <input
            name="priority"
            type="number"
            value={priority}
            onChange={(e) => setPriority(Number(e.target.value))}
          />
        </label>
        <button type="submit" disabled={!video || submit.isPending}>
          Analyse
        </button>
        <span className="msg">{msg}</span>
      </form>
    </section>
  );
}
