/**
 * Idempotency across instances: two ledgers (two hubs) sharing one Redis index and one blob
 * store (a directory both read, as instances share a bucket). A retry on the other instance
 * replays the first answer, waits for a first try still running there, runs afresh after it
 * failed, and gets 409 for another body; with Redis gone, each instance runs on its own.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { isHubError } from "../../src/errors.ts";
import {
  createIdempotencyLedger,
  type IdempotencyLedger,
  type PreparedReply,
  type ReplyToSend,
} from "../../src/http/idempotency.ts";
import { createSharedIdempotencyIndex } from "../../src/http/idempotency-shared.ts";
import { createDiskBlobStore } from "../../src/storage/blobs/disk.ts";
import { cleanUp, connectTest, deadPort, openLink, testPrefix } from "../helpers/redis.ts";

const prefix = testPrefix();
let directory: string;
let one: IdempotencyLedger;
let two: IdempotencyLedger;

const reply = (text: string): PreparedReply => ({
  status: 200,
  headers: { "x-image-hub-record-id": text },
  pieces: [Buffer.from(`{"a":"${text}"}`)],
});

async function bodyOf(toSend: ReplyToSend): Promise<string> {
  if (Array.isArray(toSend.body)) return Buffer.concat(toSend.body).toString();
  const chunks: Buffer[] = [];
  for await (const chunk of toSend.body as Readable) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

async function ledgerFor(instanceId: string): Promise<IdempotencyLedger> {
  const link = await connectTest(prefix);
  return createIdempotencyLedger({
    blobs: await createDiskBlobStore({ directory }),
    shared: createSharedIdempotencyIndex({ link, instanceId, runningTtlMs: 60_000 }),
  });
}

before(async () => {
  directory = await mkdtemp(path.join(os.tmpdir(), "image-hub-idempotency-shared-"));
  one = await ledgerFor("one");
  two = await ledgerFor("two");
});

after(async () => {
  await Promise.all([one?.close(), two?.close()]);
  await cleanUp(prefix);
  await rm(directory, { recursive: true, force: true });
});

const claim = (scope: string, fingerprint = "f") => ({ scope, fingerprint, keepMs: 60_000 });
/** Waits until a kept answer has been written and published (keeping runs after the reply). */
const settle = () => new Promise((resolve) => setTimeout(resolve, 100));

describe("a retry on another instance", () => {
  it("replays the first try's answer, without running again", async () => {
    let runs = 0;
    const work = async () => {
      runs += 1;
      return reply("first");
    };
    const first = await one.run(claim("replay"), work);
    assert.equal(first.outcome, "first");
    await settle();
    const retry = await two.run(claim("replay"), work);
    assert.equal(retry.outcome, "replayed");
    assert.equal(await bodyOf(retry.reply), '{"a":"first"}');
    assert.equal(retry.reply.headers["x-image-hub-record-id"], "first");
    assert.equal(runs, 1);
  });

  it("waits for a first try still running elsewhere, and gets its answer", async () => {
    let finish: (value: PreparedReply) => void = () => {};
    let runs = 0;
    const slow = () => {
      runs += 1;
      return new Promise<PreparedReply>((resolve) => {
        finish = resolve;
      });
    };
    const first = one.run(claim("join"), slow);
    await settle();
    const retry = two.run(claim("join"), slow);
    await settle();
    finish(reply("slow"));
    const [firstDone, retryDone] = await Promise.all([first, retry]);
    assert.equal(firstDone.outcome, "first");
    assert.equal(retryDone.outcome, "joined");
    assert.equal(await bodyOf(retryDone.reply), '{"a":"slow"}');
    assert.equal(runs, 1);
  });

  it("runs afresh after the first try failed, and refuses another body with 409", async () => {
    await assert.rejects(
      one.run(claim("failed"), async () => {
        throw new Error("upstream down");
      }),
    );
    const retry = await two.run(claim("failed"), async () => reply("second"));
    assert.equal(retry.outcome, "first");
    await settle();
    await assert.rejects(
      two.run(claim("failed", "another body"), async () => reply("x")),
      (error) => isHubError(error) && error.code === "idempotency_key_reused",
    );
    await assert.rejects(
      one.run(claim("failed", "another body"), async () => reply("x")),
      (error) => isHubError(error) && error.code === "idempotency_key_reused",
    );
  });
});

describe("with Redis unreachable", () => {
  it("runs each request on its instance, at once", async () => {
    const link = openLink({ url: `redis://127.0.0.1:${await deadPort()}`, keyPrefix: prefix });
    const ledger = createIdempotencyLedger({
      blobs: await createDiskBlobStore({ directory }),
      shared: createSharedIdempotencyIndex({ link, instanceId: "alone", runningTtlMs: 60_000 }),
    });
    const started = Date.now();
    const done = await ledger.run(claim("no-redis"), async () => reply("alone"));
    assert.equal(done.outcome, "first");
    assert.ok(Date.now() - started < 1_000);
    await ledger.close();
  });
});
