/** A running request's time so far, against the model's typical time when the hub knows it. */
import { useEffect, useState } from "preact/hooks";
import type { Job } from "./types.ts";

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

export function JobProgress({ job }: { job: Job }) {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 200);
    return () => clearInterval(timer);
  }, []);
  const elapsed = Math.max(0, now - job.startedAt);
  const typical = job.typicalMs;
  const label = `Generating: ${short(job.settings.prompt)}`;

  return (
    <div class="pg-progress">
      {typical && elapsed <= typical ? (
        <progress aria-label={label} max={typical} value={elapsed} />
      ) : (
        // Indeterminate: the time is unknown, or already past the typical one.
        <progress aria-label={label} />
      )}
      <span class="muted pg-elapsed">
        {seconds(elapsed)} ·{" "}
        {typical
          ? elapsed > typical
            ? `longer than the typical ${seconds(typical)}`
            : `typically ${seconds(typical)}`
          : "typically unknown"}
      </span>
    </div>
  );
}

function short(text: string): string {
  return text.length > 40 ? `${text.slice(0, 39)}…` : text;
}
