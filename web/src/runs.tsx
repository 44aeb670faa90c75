import { useEffect, useState } from "react";
import { useInfiniteQuery, useMutation, useQueryClient } from "@tanstack/react-query";
import { api, RunFilter, RunSummary } from "./api";

export function when(v: unknown): string {
  if (v === null || v === undefined || v === "") return "–";
  const d = typeof v === "number" ? new Date(v < 1e12 ? v * 1000 : v) : new Date(String(v));
  if (Number.isNaN(d.getTime())) return String(v);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

const STATUSES = ["complete", "partial", "failed", "running", "interrupted", "live"];
const SORTS: [string, string][] = [
  ["-started_at", "newest first"],
  ["started_at", "oldest first"],
  ["-detections", "most detections"],
  ["detections", "fewest detections"],
];

function useDebounced<T>(v: T, ms: number): T {
  const [d, setD] = useState(v);
  useEffect(() => {
    const t = setTimeout(() => setD(v), ms);
    return () => clearTimeout(t);
  }, [v, ms]);
  return d;
}

/// Every stored run (CLI, service, live), keyset-paged, with filters,
/// sort, delete, and two picked for a comparison.
export function RunsPage({ compareWith }: { compareWith?: number }) {
  const qc = useQueryClient();
  const [f, setF] = useState<RunFilter>({ sort: "-started_at" });
  const [picked, setPicked] = useState<RunSummary[]>([]);
  const [confirm, setConfirm] = useState<RunSummary | null>(null);
  const filter = useDebounced(f, 250);
  const since = filter.since ? new Date(filter.since + "T00:00:00").toISOString() : undefined;
  const until = filter.until ? new Date(filter.until + "T23:59:59").toISOString() : undefined;
  const q = useInfiniteQuery({
    queryKey: ["runs", filter],
    queryFn: ({ pageParam }) => api.runs({ ...filter, since, until }, pageParam, 50),
    initialPageParam: null as string | null,
    getNextPageParam: (p) => p.next_cursor ?? undefined,
  });
  const rows = q.data?.pages.flatMap((p) => p.items) ?? [];
  useEffect(() => {
    if (compareWith && !picked.length) {
      const r = rows.find((x) => x.id === compareWith);
      if (r) setPicked([r]);
    }
  }, [compareWith, rows, picked.length]);
  const del = useMutation({
    mutationFn: (id: number) => api.deleteRun(id),
    onSuccess: (_v, id) => {
      setConfirm(null);
      setPicked((p) => p.filter((r) => r.id !== id));
      qc.invalidateQueries({ queryKey: ["runs"] });
    },
  });
  const toggle = (r: RunSummary) =>
    setPicked((p) => (p.some((x) => x.id === r.id) ? p.filter((x) => x.id !== r.id) : [...p.slice(-1), r]));
  const sameVideo = picked.length === 2 && picked[0].video_id === picked[1].video_id;
  const set = (k: keyof RunFilter) => (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement>) =>
    setF({ ...f, [k]: e.target.value || undefined });
  return (
    <section className="runs-page">
      <div className="section-head">
        <h2>Runs</h2>
        <div className="compare-bar" data-testid="compare-bar">
          {picked.length === 0 && <span className="muted">Tick two runs of the same video to compare them.</span>}
          {picked.length === 1 && <span className="muted">Run {picked[0].id} picked; tick another run of the same video.</span>}
          {picked.length === 2 && !sameVideo && <span className="error">Runs {picked[0].id} and {picked[1].id} are of different videos.</span>}
          {sameVideo && (
            <a className="button primary" href={`#/compare/${picked[0].id}/${picked[1].id}`} data-testid="compare-go">
              Compare runs {picked[0].id} and {picked[1].id}
            </a>
          )}
        </div>
      </div>
      <form className="run-filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Video
          <input name="video" placeholder="name contains…" value={f.video ?? ""} onChange={set("video")} />
        </label>
        <label>
          Model
          <input name="model" placeholder="name contains…" value={f.model ?? ""} onChange={set("model")} />
        </label>
        <label>
          Status
          <select name="status" value={f.status ?? ""} onChange={set("status")}>
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          From
          <input name="since" type="date" value={f.since ?? ""} onChange={set("since")} />
        </label>
        <label>
          To
          <input name="until" type="date" value={f.until ?? ""} onChange={set("until")} />
        </label>
        <label>
          Sort
          <select name="sort" value={f.sort} onChange={set("sort")}>
            {SORTS.map(([v, l]) => (
              <option key={v} value={v}>
                {l}
              </option>
            ))}
          </select>
        </label>
      </form>
      {confirm && (
        <div className="confirm" role="alertdialog" data-testid="confirm-delete">
          <span>
            Delete run <b>{confirm.id}</b> ({confirm.video}) with its {confirm.detections.toLocaleString()} detections,
            tracks and evaluations? This cannot be undone.
          </span>
          <button className="danger" onClick={() => del.mutate(confirm.id)} disabled={del.isPending}>
            Delete
          </button>
          <button onClick={() => setConfirm(null)}>Cancel</button>
          {del.error && <span className="error">{del.error.message}</span>}
        </div>
      )}
      {q.error && <p className="error">{q.error.message}</p>}
      <table className="runs clickable-rows" data-testid="runs">
        <thead>
          <tr>
            <th />
            <th className="num">run</th>
            <th>video</th>
            <th>model</th>
            <th>status</th>
            <th>source</th>
            <th className="num">frames</th>
            <th className="num">detections</th>
            <th className="num">tracks</th>
            <th className="num">evals</th>
            <th>started</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.id} data-run={r.id} className={picked.some((p) => p.id === r.id) ? "selected" : ""}>
              <td>
                <input
                  type="checkbox"
                  aria-label={`pick run ${r.id}`}
                  checked={picked.some((p) => p.id === r.id)}
                  onChange={() => toggle(r)}
                />
              </td>
              <td className="num">
                <a href={`#/runs/${r.id}`}>{r.id}</a>
              </td>
              <td className="ellipsis" title={r.video}>
                <a href={`#/runs/${r.id}`}>{r.video}</a>
              </td>
              <td className="ellipsis" title={r.model}>
                {r.model}
              </td>
              <td>
                <span className={`pill status-${r.status}`}>{r.status}</span>
              </td>
              <td className="muted">
                {r.source}
                {r.job_id ? ` #${r.job_id}` : ""}
              </td>
              <td className="num">{r.frames.toLocaleString()}</td>
              <td className="num">{r.detections.toLocaleString()}</td>
              <td className="num">{r.tracks.toLocaleString()}</td>
              <td className="num">{r.evals || ""}</td>
              <td className="muted">{when(r.started_at)}</td>
              <td>
                <button
                  className="link danger"
                  onClick={() => setConfirm(r)}
                  disabled={r.status === "running" || r.status === "live"}
                  data-testid={`delete-${r.id}`}
                >
                  delete
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {!rows.length && !q.isLoading && <p className="muted">No runs match.</p>}
      <div className="pager">
        <span className="muted">{rows.length} shown</span>
        {q.hasNextPage && (
          <button onClick={() => q.fetchNextPage()} disabled={q.isFetchingNextPage} data-testid="more-runs">
            {q.isFetchingNextPage ? "Loading…" : "Load more"}
          </button>
        )}
      </div>
    </section>
  );
}
