/**
 * The idempotency ledger (http/idempotency.ts) without HTTP: a real disk blob store in a
 * temporary directory, a clock the tests move, and work they resolve by hand.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";
import { afterEach, beforeEach, describe, it } from "node:test";
import { HubError, isHubError } from "../../src/errors.ts";
import {
  createIdempotencyLedger,
  fingerprintOf,
  type IdempotencyLedger,
  type PreparedReply,
  type ReplyToSend,
} from "../../src/http/idempotency.ts";
import { createDiskBlobStore } from "../../src/storage/blobs/disk.ts";

let directory: string;
let ledger: IdempotencyLedger;
let now: number;

beforeEach(async () => {
  directory = await mkdtemp(path.join(os.tmpdir(), "image-hub-idempotency-"));
  now = 1_800_000_000_000;
  ledger = createIdempotencyLedger({
    blobs: await createDiskBlobStore({ directory }),
    clock: () => now,
  });
});

afterEach(async () => {
  await ledger.close();
  await rm(directory, { recursive: true, force: true });
});

const reply = (text: string): PreparedReply => ({
  status: 200,
  headers: { "x-image-hub-record-id": text },
  pieces: [Buffer.from('{"a":'), Buffer.from(JSON.stringify(text)), Buffer.from("}")],
});

async function bodyOf(toSend: ReplyToSend): Promise<string> {
  if (Array.isArray(toSend.body)) return Buffer.concat(toSend.body).toString();
  const chunks: Buffer[] = [];
  for await (const chunk of toSend.body as Readable) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

/** Counts the calls of `make`, which answers `text`. */
function counted(text: string) {
  const work = async () => {
    work.calls += 1;
    return reply(text);
  };
  work.calls = 0;
  return work;
}

/** Waits until the kept answer is written (the ledger keeps it after answering). */
async function kept(): Promise<void> {
  for (let i = 0; i < 100; i += 1) {
    if ((await readdir(directory)).some((name) => name.startsWith("idempotent-"))) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.fail("the answer was never kept");
}

const claim = { scope: "key-1\0key\0abc", fingerprint: "f1", keepMs: 60_000 };

describe("idempotency ledger", () => {
  it("runs the first request and replays its answer, bytes and headers, without running again", async () => {
    const work = counted("first");
    const first = await ledger.run(claim, work);
    assert.equal(first.outcome, "first");
    await kept();
    const again = await ledger.run(claim, work);
    assert.equal(again.outcome, "replayed");
    assert.equal(work.calls, 1);
    assert.equal(await bodyOf(again.reply), '{"a":"first"}');
    assert.equal(again.reply.length, '{"a":"first"}'.length);
    assert.deepEqual(again.reply.headers, { "x-image-hub-record-id": "first" });
  });

  it("a retry while the first runs waits for it and gets the same answer", async () => {
    let finish: (value: PreparedReply) => void = () => {};
    const slow = () => new Promise<PreparedReply>((resolve) => (finish = resolve));
    const work = counted("never");
    const first = ledger.run(claim, slow);
    const retry = ledger.run(claim, work);
    finish(reply("slow"));
    const [a, b] = await Promise.all([first, retry]);
    assert.deepEqual([a.outcome, b.outcome], ["first", "joined"]);
    assert.equal(await bodyOf(b.reply), '{"a":"slow"}');
    assert.equal(work.calls, 0, "the retry did not run");
  });

  it("the same key for another request is a 409, while running and after", async () => {
    let finish: (value: PreparedReply) => void = () => {};
    const running = ledger.run(claim, () => new Promise((resolve) => (finish = resolve)));
    const conflict = (error: unknown) =>
      isHubError(error) && error.status === 409 && error.code === "idempotency_key_reused";
    await assert.rejects(ledger.run({ ...claim, fingerprint: "f2" }, counted("x")), conflict);
    finish(reply("one"));
    await running;
    await kept();
    await assert.rejects(ledger.run({ ...claim, fingerprint: "f2" }, counted("x")), conflict);
  });

  it("a failure is shared with the retries waiting, and kept for none: the next one runs", async () => {
    let fail: (error: unknown) => void = () => {};
    const first = ledger.run(claim, () => new Promise((_, reject) => (fail = reject)));
    const waiting = ledger.run(claim, counted("never"));
    const refused = new HubError("upstream down", {
      status: 503,
      type: "server_error",
      code: "upstream_unavailable",
    });
    fail(refused);
    await assert.rejects(first, (error) => error === refused);
    await assert.rejects(waiting, (error) => error === refused);
    const work = counted("later");
    const later = await ledger.run(claim, work);
    assert.equal(later.outcome, "first");
    assert.equal(work.calls, 1);
  });

  it("forgets an answer once keepMs has passed: the request runs again", async () => {
    const work = counted("again");
    await ledger.run(claim, work);
    await kept();
    now += 60_000;
    const later = await ledger.run(claim, work);
    assert.equal(later.outcome, "first");
    assert.equal(work.calls, 2);
  });

  it("scopes are apart: another key's same idempotency key runs on its own", async () => {
    const work = counted("x");
    await ledger.run(claim, work);
    await ledger.run({ ...claim, scope: "key-2\0key\0abc" }, work);
    assert.equal(work.calls, 2);
  });

  it("runs again when the kept answer's blob has gone", async () => {
    const work = counted("x");
    await ledger.run(claim, work);
    await kept();
    for (const name of await readdir(directory)) await rm(path.join(directory, name));
    const again = await ledger.run(claim, work);
    assert.equal(again.outcome, "first");
    assert.equal(work.calls, 2);
  });
});

describe("fingerprintOf", () => {
  it("ignores the order of keys, and tells apart values, routes and bytes", () => {
    const print = fingerprintOf("/r", { a: 1, b: [1, "x"] });
    assert.equal(fingerprintOf("/r", { b: [1, "x"], a: 1 }), print);
    assert.notEqual(fingerprintOf("/r", { a: 2, b: [1, "x"] }), print);
    assert.notEqual(fingerprintOf("/other", { a: 1, b: [1, "x"] }), print);
    assert.notEqual(fingerprintOf("/r", { a: "1", b: [1, "x"] }), print);
    assert.notEqual(
      fingerprintOf("/r", { image: Buffer.from([1, 2]) }),
      fingerprintOf("/r", { image: Buffer.from([1, 3]) }),
    );
  });
});
