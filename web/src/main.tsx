import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { QueryClient, QueryClientProvider, useQuery } from "@tanstack/react-query";
import { JobList, SubmitForm } from "./jobs";
import { JobDetail } from "./jobDetail";
import { RunViewer } from "./run";
import { RunsPage } from "./runs";
import { ComparePage } from "./compare";
import { LivePage } from "./live";
import { api, getToken, setToken } from "./api";
import "./style.css";

const queryClient = new QueryClient({
  defaultOptions: { queries: { retry: 1, refetchOnWindowFocus: false } },
});

/// Hash routes: #/ (jobs), #/jobs/ID, #/runs, #/runs/ID, #/compare/A/B,
/// #/live; `?k=v` after the path.
function useRoute(): { parts: string[]; query: URLSearchParams } {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const f = () => setHash(location.hash);
    addEventListener("hashchange", f);
    return () => removeEventListener("hashchange", f);
  }, []);
  const [path, q] = hash.replace(/^#\/?/, "").split("?");
  return { parts: path.split("/").filter(Boolean), query: new URLSearchParams(q ?? "") };
}

function TokenField() {
  const [t, setT] = useState(getToken());
  const who = useQuery({ queryKey: ["whoami"], queryFn: api.whoami, retry: false });
  return (
    <label className="token">
      {who.data?.admin && (
        <span className="pill admin" title="this token sees server-side paths">
          admin
        </span>
      )}
      token{" "}
      <input
        type="password"
        value={t}
        placeholder="(none)"
        onChange={(e) => {
          setT(e.target.value);
          setToken(e.target.value);
          queryClient.invalidateQueries();
        }}
      />
    </label>
  );
}

function App() {
  const { parts: route, query } = useRoute();
  let page;
  let nav = "jobs";
  if (route[0] === "jobs" && route[1]) page = <JobDetail id={Number(route[1])} />;
  // Keyed by id: opening another run starts from a fresh player (frame 0).
  else if (route[0] === "runs" && route[1])
    (page = <RunViewer key={route[1]} id={Number(route[1])} initialTab={query.get("tab") ?? undefined} />), (nav = "runs");
  else if (route[0] === "runs")
    (page = <RunsPage compareWith={Number(query.get("compare")) || undefined} />), (nav = "runs");
  else if (route[0] === "compare" && route[1] && route[2])
    (page = <ComparePage key={`${route[1]}-${route[2]}`} a={Number(route[1])} b={Number(route[2])} />), (nav = "runs");
  else if (route[0] === "live") (page = <LivePage />), (nav = "live");
  else
    page = (
      <>
        <SubmitForm />
        <JobList />
      </>
    );
  return (
    <>
      <header>
        <a href="#/" className="brand">
          Peregrine
        </a>
        <nav>
          <a href="#/" className={nav === "jobs" ? "on" : ""}>
            Jobs
          </a>
          <a href="#/runs" className={nav === "runs" ? "on" : ""}>
            Runs
          </a>
          <a href="#/live" className={nav === "live" ? "on" : ""}>
            Live
          </a>
        </nav>
        <TokenField />
      </header>
      <main>{page}</main>
    </>
  );
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <App />
    </QueryClientProvider>
  </StrictMode>,
);
