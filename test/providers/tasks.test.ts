/**
 * The task engine (providers/tasks.ts) with a scripted task API: no HTTP, a clock and a sleep
 * the test owns, so every poll and every wait is counted.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { contentPolicy, isHubError } from "../../src/errors.ts";
import {
  createTaskProvider,
  type SubmittedTask,
  type TaskApi,
  type TaskJournal,
  type TaskStatus,
} from "../../src/providers/tasks.ts";
import { providerCall } from "../helpers/provider-call.ts";

const PNG_HEAD = Buffer.from("89504e470d0a1a0a0000000d49484452", "hex");

/** A task API that answers polls from `script` in order, and records what it was asked. */
function scripted(script: TaskStatus[], options: { cancellable?: boolean } = {}) {
  const seen = { submits: 0, polls: 0, cancels: 0 };
  const api: TaskApi = {
    name: "Sim",
    async submit() {
      seen.submits += 1;
      return { id: "task-1", state: { polling_url: "http://sim/poll/1" } };
    },
    async poll() {
      seen.polls += 1;
      return script.shift() ?? { kind: "pending" };
    },
  };
  if (options.cancellable !== false) {
    api.cancel = async () => {
      seen.cancels += 1;
    };
  }
  return { api, seen };
}

/** A virtual clock: `sleep` moves it instead of waiting, and records each wait. */
function virtualTime() {
  let at = 0;
  const waits: number[] = [];
  return {
    waits,
    now: () => at,
    sleep: async (ms: number, signal: AbortSignal) => {
      signal.throwIfAborted();
      waits.push(ms);
      at += ms;
    },
    advance: (ms: number) => {
      at += ms;
    },
  };
}

const done: TaskStatus = {
  kind: "done",
  result: {
    images: [{ kind: "url", url: "http://sim/result.png", revisedPrompt: undefined }],
    usage: undefined,
    warnings: [],
  },
};

describe("createTaskProvider", () => {
  it("polls with back-off until done, and fetches the result URL at once", async () => {
    const { api, seen } = scripted([
      { kind: "pending" },
      { kind: "pending" },
      { kind: "pending" },
      done,
    ]);
    const time = virtualTime();
    const fetched: string[] = [];
    const provider = createTaskProvider(api, {
      now: time.now,
      sleep: time.sleep,
      fetchResult: async (url) => {
        fetched.push(url);
        return PNG_HEAD;
      },
    });
    const result = await provider.generate(providerCall({ timeoutMs: 60_000 }));
    assert.deepEqual(seen, { submits: 1, polls: 4, cancels: 0 });
    assert.deepEqual(time.waits, [500, 750, 1125, 1687.5], "0.5 s, then × 1.5");
    assert.deepEqual(fetched, ["http://sim/result.png"]);
    assert.deepEqual(result.images[0], {
      kind: "bytes",
      bytes: PNG_HEAD,
      mimeType: "image/png",
      revisedPrompt: undefined,
    });
  });

  it("waits as long as the vendor says, within bounds, and never less than 250 ms", async () => {
    const { api } = scripted([
      { kind: "pending", retryAfterMs: 3000 },
      { kind: "pending", retryAfterMs: 0 },
      { kind: "pending", retryAfterMs: 600_000 },
      done,
    ]);
    const time = virtualTime();
    await createTaskProvider(api, { now: time.now, sleep: time.sleep }).generate(
      providerCall({ timeoutMs: 600_000 }),
    );
    assert.deepEqual(time.waits, [500, 3000, 250, 20_000]);
  });

  it("a failed or moderated task is its error, and is not cancelled", async () => {
    const refused = contentPolicy("The task was moderated.");
    const { api, seen } = scripted([{ kind: "pending" }, { kind: "failed", error: refused }]);
    const time = virtualTime();
    await assert.rejects(
      createTaskProvider(api, { now: time.now, sleep: time.sleep }).generate(providerCall()),
      (error) => error === refused,
    );
    assert.equal(seen.cancels, 0);
  });

  it("a task that outlives the budget is cancelled upstream and answers 504", async () => {
    const { api, seen } = scripted([]);
    const time = virtualTime();
    await assert.rejects(
      createTaskProvider(api, { now: time.now, sleep: time.sleep }).generate(
        providerCall({ timeoutMs: 10_000 }),
      ),
      (error) => isHubError(error) && error.status === 504 && error.code === "upstream_timeout",
    );
    assert.equal(seen.cancels, 1);
    assert.ok(time.now() <= 10_000, "no wait runs past the budget");
    assert.ok(seen.polls < 12, `polls stay few: ${seen.polls}`);
  });

  it("a client that leaves cancels the task upstream and ends the call with its reason", async () => {
    const { api, seen } = scripted([]);
    const controller = new AbortController();
    const reason = new Error("client gone");
    let polls = 0;
    const time = virtualTime();
    const provider = createTaskProvider(api, {
      now: time.now,
      sleep: async (ms, signal) => {
        polls += 1;
        if (polls === 3) controller.abort(reason);
        await time.sleep(ms, signal);
      },
    });
    await assert.rejects(
      provider.generate(providerCall({ signal: controller.signal, timeoutMs: 60_000 })),
      (error) => error === reason,
    );
    assert.equal(seen.cancels, 1);
  });

  it("tells the journal of the task before polling it, and when it ends", async () => {
    const entries: string[] = [];
    const journal: TaskJournal = {
      async submitted({ provider, task }: { provider: string; task: SubmittedTask }) {
        entries.push(`submitted ${provider} ${task.id} ${task.state.polling_url}`);
      },
      async ended({ provider, taskId }) {
        entries.push(`ended ${provider} ${taskId}`);
      },
    };
    const { api } = scripted([done]);
    const time = virtualTime();
    await createTaskProvider(api, { journal, now: time.now, sleep: time.sleep }).generate(
      providerCall(),
    );
    assert.deepEqual(entries, ["submitted Sim task-1 http://sim/poll/1", "ended Sim task-1"]);
  });

  it("refuses a result that is not an image", async () => {
    const { api } = scripted([done]);
    const time = virtualTime();
    const provider = createTaskProvider(api, {
      now: time.now,
      sleep: time.sleep,
      fetchResult: async () => Buffer.from("<html>expired</html>"),
    });
    await assert.rejects(
      provider.generate(providerCall()),
      (error) => isHubError(error) && error.code === "upstream_invalid_response",
    );
  });
});
