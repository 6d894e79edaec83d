/**
 * The task engine: image APIs that take a task and are polled until the image is ready (Black
 * Forest Labs, Replicate, fal, Ideogram's async endpoint, ComfyUI) made to look like any other
 * provider. An adapter says how to submit, poll and cancel one task (`TaskApi`); the engine does
 * the rest, the same way for all:
 *
 * - polls with back-off (0.5 s, × 1.5, at most 5 s; sooner or later where the vendor says
 *   when), never more often, inside the call's time budget;
 * - cancels the upstream task, where the API can, when the client goes away or the budget runs
 *   out (then the call fails 504 `upstream_timeout`, and nothing is charged);
 * - fetches result URLs at once, through the hub's guarded fetch, since they expire within
 *   minutes;
 * - tells a journal of each task before it is polled and when it ends, so that a hub that
 *   restarts mid-task can find the task again and settle it (credentials/task-recovery.ts).
 */
import { setTimeout as sleepFor } from "node:timers/promises";
import { type HubError, upstreamFailed, upstreamTimeout } from "../errors.ts";
import { sniffImageType } from "../image-formats.ts";
import type { ImageProvider, ProviderCall, ProviderImage, ProviderResult } from "./types.ts";

/** A task the vendor accepted: its id, and what polling and cancelling it need (JSON-safe). */
export interface SubmittedTask {
  id: string;
  /** The vendor's URLs and ids for this task (`polling_url`, `urls.get`): kept across restarts. */
  state: Readonly<Record<string, string>>;
}

export type TaskStatus =
  | { kind: "pending" /** When the vendor says to look again, ms. */; retryAfterMs?: number }
  | { kind: "done"; result: ProviderResult }
  /** Failed, moderated (a `content_policy_violation`) or expired upstream: the error to answer. */
  | { kind: "failed"; error: HubError };

export interface TaskRequestContext {
  signal: AbortSignal;
  /** Time left for this one HTTP request. */
  timeoutMs: number;
}

/** What an adapter of a task-based API implements: one task's life, one request at a time. */
export interface TaskApi {
  readonly name: string;
  submit(call: ProviderCall, context: TaskRequestContext): Promise<SubmittedTask>;
  poll(task: SubmittedTask, context: TaskRequestContext): Promise<TaskStatus>;
  /** Where the API can cancel a task; best effort, errors are the engine's to swallow. */
  cancel?(task: SubmittedTask, context: TaskRequestContext): Promise<void>;
  listModels?: ImageProvider["listModels"];
}

/** Where submitted tasks are written down until they end (crash recovery reads it). */
export interface TaskJournal {
  submitted(entry: { provider: string; task: SubmittedTask; call: ProviderCall }): Promise<void>;
  ended(entry: { provider: string; taskId: string }): Promise<void>;
}

export interface TaskEngineOptions {
  /** The provider id the journal names (`bfl`); the API's name when unset. */
  providerId?: string;
  /** Fetches a result URL through the hub's guarded fetch; URL images are kept as URLs if unset. */
  fetchResult?: (url: string, signal: AbortSignal) => Promise<Buffer>;
  journal?: TaskJournal;
  /** Waits between polls; rejects with the signal's reason when it aborts. Tests replace it. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Monotonic ms for the time budget; tests replace it. */
  now?: () => number;
  poll?: { firstMs: number; factor: number; maxMs: number };
}

export const DEFAULT_POLL = { firstMs: 500, factor: 1.5, maxMs: 5_000 } as const;
/** One poll or submit request takes at most this, whatever is left of the budget. */
const REQUEST_TIMEOUT_MS = 30_000;
/** A cancel request gets this, even once the budget is spent: it is worth one try. */
const CANCEL_TIMEOUT_MS = 5_000;
const DEFAULT_BUDGET_MS = 300_000;

export function createTaskProvider(api: TaskApi, options: TaskEngineOptions = {}): ImageProvider {
  const now = options.now ?? (() => performance.now());
  const sleep = options.sleep ?? sleepUnlessAborted;
  const policy = options.poll ?? DEFAULT_POLL;

  async function run(call: ProviderCall): Promise<ProviderResult> {
    call.signal.throwIfAborted();
    const endsAt = now() + (call.timeoutMs ?? DEFAULT_BUDGET_MS);
    const context = () => ({
      signal: call.signal,
      timeoutMs: Math.max(1, Math.min(REQUEST_TIMEOUT_MS, endsAt - now())),
    });
    const task = await api.submit(call, context());
    const provider = options.providerId ?? api.name;
    await options.journal?.submitted({ provider, task, call });
    let ended = false;
    try {
      let waitMs: number = policy.firstMs;
      for (;;) {
        const left = endsAt - now();
        if (left <= 0) throw outOfTime(api.name);
        await sleep(Math.min(waitMs, left), call.signal);
        if (endsAt - now() <= 0) throw outOfTime(api.name);
        const status = await api.poll(task, context());
        if (status.kind === "done") {
          ended = true;
          return await withFetchedImages(status.result, call.signal);
        }
        if (status.kind === "failed") {
          ended = true;
          throw status.error;
        }
        // The vendor's hint wins, within reason: never a busy loop, never a minute's nap.
        waitMs = status.retryAfterMs ?? Math.min(policy.maxMs, waitMs * policy.factor);
        waitMs = Math.max(policy.firstMs / 2, Math.min(policy.maxMs * 4, waitMs));
      }
    } catch (error) {
      if (!ended) await cancelQuietly(task);
      ended = true;
      throw error;
    } finally {
      if (ended) await options.journal?.ended({ provider, taskId: task.id });
    }
  }

  /** One try at cancelling upstream, on its own short budget (the call's signal may be gone). */
  async function cancelQuietly(task: SubmittedTask): Promise<void> {
    if (!api.cancel) return;
    try {
      await api.cancel(task, {
        signal: AbortSignal.timeout(CANCEL_TIMEOUT_MS),
        timeoutMs: CANCEL_TIMEOUT_MS,
      });
    } catch {
      // Best effort: a task that cannot be cancelled runs out upstream; nothing is charged here.
    }
  }

  /** Result URLs expire in minutes: fetched now, not when the whole fan-out is done. */
  async function withFetchedImages(result: ProviderResult, signal: AbortSignal) {
    const fetchResult = options.fetchResult;
    if (!fetchResult) return result;
    const images = await Promise.all(
      result.images.map(async (image): Promise<ProviderImage> => {
        if (image.kind !== "url") return image;
        const bytes = await fetchResult(image.url, signal);
        const mimeType = sniffImageType(bytes);
        if (!mimeType) {
          throw upstreamFailed(`${api.name} answered with a result that is not an image.`, {
            code: "upstream_invalid_response",
          });
        }
        return { kind: "bytes", bytes, mimeType, revisedPrompt: image.revisedPrompt };
      }),
    );
    return { ...result, images };
  }

  const provider: ImageProvider = { name: api.name, generate: run };
  if (api.listModels) provider.listModels = api.listModels;
  return provider;
}

function outOfTime(name: string): HubError {
  return upstreamTimeout(`${name} did not finish the image within the model's time budget.`);
}

async function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await sleepFor(ms, undefined, { signal });
  } catch {
    signal.throwIfAborted();
  }
}
