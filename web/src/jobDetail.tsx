import { useEffect } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, followJob, StageSummary, TERMINAL } from "./api";
import { Progress } from "./jobs";

/// Horizontal bars: mean and p95 milliseconds per frame for each stage.
export function StageChart({ timings }: { timings: Record<string, StageSummary> }) {
  const order = ["decode", "preprocess", "infer", "postprocess", "track", "store"];
  const stages = order.filter((s) => timings[s]);
  const max = Math.max(...stages.map((s) => timings[s].p95_ms), 0.001);
  const w = 420;
  return (
    <svg className="chart" width={w + 280} height={stages.length * 28 + 10} role="img" aria-label="per-stage timings">
      {stages.map((s, i) => {
        const t = timings[s];
        const y = i * 28 + 5;
        return (
          <g key={s}>
            <text x={0} y={y + 15}>
              {s}
            </text>
            <rect x={100} y={y + 2} width={(t.p95_ms / max) * w} height={18} className="p95" />
            <rect x={100} y={y + 2} width={(t.mean_ms / max) * w} height={18} className="mean" />
            <text x={110 + w} y={y + 15}>
              {t.mean_ms.toFixed(2)} ms (p95 {t.p95_ms.toFixed(2)})
            </text>
          </g>
        );
      })}
    </svg>
  );
}

export function JobDetail({ id }: { id: number }) {
  const qc = useQueryClient();
  const q = useQuery({ queryKey: ["job", id], queryFn: () => api.job(id) });
  const job = q.data;
  const active = job && !TERMINAL.includes(job.state);
  useEffect(() => {
    if (!active) return;
    return followJob(id, (j) => qc.setQueryData(["job", id], j));
  }, [id, active, qc]);
  const cancel = useMutation({
    mutationFn: () => api.cancel(id),
    onSuccess: (j) => qc.setQueryData(["job", id], j),
  });
  if (q.error) return <p className="error">{q.error.message}</p>;
  if (!job) return <p>Loading…</p>;
  return (
    <section>
      <h2>
        Job {job.id} <span className={`state ${job.state}`}>{job.state}</span>
      </h2>
      <Progress job={job} />
      <dl>
        <dt>video</dt>
        <dd>
          {job.video_name}
          {job.video !== job.video_name && <span className="muted"> · {job.video}</span>}
        </dd>
        <dt>model</dt>
        <dd>{job.model}</dd>
        <dt>params</dt>
        <dd>
          <code>{JSON.stringify(job.params)}</code>
        </dd>
        <dt>fps</dt>
        <dd>{job.fps?.toFixed(1) ?? "–"}</dd>
        <dt>ETA</dt>
        <dd>{job.eta_s != null ? `${job.eta_s.toFixed(0)} s` : "–"}</dd>
        <dt>attempts</dt>
        <dd>{job.attempts}</dd>
        {job.error && (
          <>
            <dt>error</dt>
            <dd className="error">{job.error}</dd>
          </>
        )}
        {job.run_id && (
          <>
            <dt>run</dt>
            <dd>
              <a href={`#/runs/${job.run_id}`}>run {job.run_id}</a> {job.cache_hit ? "(cached)" : ""}
            </dd>
          </>
        )}
      </dl>
      {active && (
        <button onClick={() => cancel.mutate()} disabled={cancel.isPending}>
          Cancel
        </button>
      )}
      {job.timings && Object.keys(job.timings).length > 0 && (
        <>
          <h3>Per-stage timings (per frame)</h3>
          <StageChart timings={job.timings as Record<string, StageSummary>} />
        </>
      )}
    </section>
  );
}
