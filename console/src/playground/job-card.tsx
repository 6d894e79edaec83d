/** One request: its progress while it runs, then its images, its error or its cancellation. */
import { ErrorNotice, usd } from "../components.tsx";
import { JobProgress, seconds } from "./job-progress.tsx";
import { ResultImage } from "./result-image.tsx";
import type { Job } from "./types.ts";

export interface ResultHandlers {
  onOpen: (job: Job, url: string) => void;
  onEdit: (url: string) => void;
  onAgain: (job: Job) => void;
  onCancel: (job: Job) => void;
}

export function JobCard({ job, handlers }: { job: Job; handlers: ResultHandlers }) {
  const { settings, reply } = job;
  const took = job.finishedAt === undefined ? null : job.finishedAt - job.startedAt;
  const again = (
    <button type="button" onClick={() => handlers.onAgain(job)}>
      Again
    </button>
  );
  return (
    <article class="card pg-job" aria-busy={job.state === "running"}>
      <header class="pg-job-head">
        <p class="pg-job-prompt">{settings.prompt}</p>
        <p class="muted pg-job-meta">
          {settings.edit ? (settings.edit.mask ? "Edit with mask · " : "Edit · ") : ""}
          {settings.model}
          {reply?.model && reply.model !== settings.model && ` → served by ${reply.model}`} ·{" "}
          {settings.size} · {settings.n} {settings.n === 1 ? "image" : "images"}
          {took !== null && ` · ${seconds(took)}`}
          {job.cost !== undefined && ` · ${job.cost === 0 ? "free" : usd(job.cost)}`}
        </p>
      </header>
      {job.state === "running" && (
        <div class="pg-running">
          <JobProgress job={job} />
          <button type="button" onClick={() => handlers.onCancel(job)}>
            Cancel
          </button>
        </div>
      )}
      {job.state === "failed" && (
        <>
          <ErrorNotice error={job.error} />
          {again}
        </>
      )}
      {job.state === "cancelled" && (
        <p class="pg-cancelled">
          <span class="muted">Cancelled.</span> {again}
        </p>
      )}
      {reply && reply.warnings.length > 0 && (
        <ul class="notice pg-warnings" aria-label="Warnings from the hub">
          {reply.warnings.map((warning) => (
            <li key={warning}>{warning}</li>
          ))}
        </ul>
      )}
      {reply?.partial && <p class="status-warn">Fewer images than asked: {reply.partial}.</p>}
      {reply && (
        <div class="pg-images">
          {reply.images.map((image) => (
            <ResultImage
              key={image.url}
              url={image.url}
              prompt={settings.prompt}
              onOpen={() => handlers.onOpen(job, image.url)}
              onEdit={() => handlers.onEdit(image.url)}
              onAgain={() => handlers.onAgain(job)}
            />
          ))}
        </div>
      )}
    </article>
  );
}
