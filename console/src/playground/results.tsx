/** The results area: the jobs of this tab, newest first, each a card. */
import { JobCard, type ResultHandlers } from "./job-card.tsx";
import type { Job } from "./types.ts";

export function Results({
  jobs,
  handlers,
  onClear,
}: {
  jobs: readonly Job[];
  handlers: ResultHandlers;
  onClear: () => void;
}) {
  const running = jobs.filter((job) => job.state === "running").length;
  return (
    <section class="pg-results" aria-labelledby="pg-results-title">
      <div class="pg-results-head">
        <h2 id="pg-results-title">Results</h2>
        <span class="muted" role="status">
          {running > 0 ? `${running} running` : ""}
        </span>
        {jobs.length > running && (
          <button type="button" class="link-button" onClick={onClear}>
            Clear finished
          </button>
        )}
      </div>
      {jobs.length === 0 ? (
        <p class="muted pg-empty">
          Images you make appear here, newest first. They stay while this tab is open; the Gallery
          keeps every image the hub still hosts.
        </p>
      ) : (
        jobs.map((job) => <JobCard key={job.id} job={job} handlers={handlers} />)
      )}
    </section>
  );
}
