import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { JobList, SubmitForm } from "./jobs";
import { JobDetail } from "./jobDetail";
import { RunViewer } from "./run";
import { LivePage } from "./live";
import { getToken, setToken } from "./api";
import "./style.css";

const queryClient = new QueryClient({
  defaultOptions: { queries: { retry: 1, refetchOnWindowFocus: false } },
});

/// Hash routes: #/ (jobs), #/jobs/ID, #/runs/ID, #/live.
function useRoute(): string[] {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const f = () => setHash(location.hash);
    addEventListener("hashchange", f);
    return () => removeEventListener("hashchange", f);
  }, []);
  return hash.replace(/^#\/?/, "").split("/").filter(Boolean);
}

function TokenField() {
  const [t, setT] = useState(getToken());
  return (
    <label className="token">
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
  const route = useRoute();
  let page;
  if (route[0] === "jobs" && route[1]) page = <JobDetail id={Number(route[1])} />;
  else if (route[0] === "runs" && route[1]) page = <RunViewer id={Number(route[1])} />;
  else if (route[0] === "live") page = <LivePage />;
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
          <a href="#/">Jobs</a>
          <a href="#/live">Live</a>
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
