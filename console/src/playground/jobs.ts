/**
 * The playground's requests ("jobs"), several at a time. They live in memory for the tab, not
 * in the component: a visit to the Gallery and back keeps them, and a request still running
 * finishes into the list. A different key signing in starts an empty list.
 */
import { useEffect, useState } from "preact/hooks";
import type { Api } from "../api.ts";
import { requestImages } from "./request.ts";
import type { Job, JobSettings } from "./types.ts";

/** Results beyond these are dropped; the Gallery keeps everything the hub still hosts. */
const KEEP = 40;

let owner: string | null = null;
let jobs: Job[] = [];
let nextId = 1;
const controllers = new Map<number, AbortController>();
const listeners = new Set<() => void>();

function update(id: number, change: Partial<Job>): void {
  jobs = jobs.map((job) => (job.id === id ? { ...job, ...change } : job));
  for (const listener of listeners) listener();
}

function claim(key: string): void {
  if (owner === key) return;
  for (const controller of controllers.values()) controller.abort();
  controllers.clear();
  owner = key;
  jobs = [];
}

export function useJobs(key: string, api: Api) {
  claim(key);
  const [, setVersion] = useState(0);
  useEffect(() => {
    const listener = () => setVersion((value) => value + 1);
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
    };
  }, []);

  const run = (settings: JobSettings, typicalMs: number | null) => {
    const id = nextId++;
    const controller = new AbortController();
    controllers.set(id, controller);
    jobs = [
      { id, settings, startedAt: Date.now(), typicalMs, state: "running" as const },
      ...jobs,
    ].slice(0, KEEP);
    for (const listener of listeners) listener();
    requestImages(api, settings, controller.signal)
      .then((reply) => {
        update(id, { state: "done", reply, cost: reply.cost, finishedAt: Date.now() });
      })
      .catch((error: unknown) => {
        const cancelled = controller.signal.aborted;
        update(id, {
          state: cancelled ? "cancelled" : "failed",
          error: cancelled ? undefined : error,
          finishedAt: Date.now(),
        });
      })
      .finally(() => controllers.delete(id));
  };

  return {
    jobs,
    run,
    cancel: (id: number) => controllers.get(id)?.abort(),
    clear: () => {
      jobs = jobs.filter((job) => job.state === "running");
      for (const listener of listeners) listener();
    },
  };
}
