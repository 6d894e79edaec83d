/**
 * GET /api/me and GET /api/images (the gallery) against a running hub: who a key is, and the
 * images the hub still hosts with their prompt, model, size and cost, a client seeing its own.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { issueKey } from "../../src/auth/issue.ts";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import { callHub } from "../helpers/hub-process.ts";

let hub: TestHub;
let alice: { id: string; key: string };
let bob: { id: string; key: string };

const call = (path: string, key: string, body?: unknown) =>
  callHub(hub, body === undefined ? "GET" : "POST", path, { key, body });

interface Listed {
  id: string;
  url: string;
  prompt: string;
  model: string;
  size: string;
  cost: number;
  key_id: string;
  expires_at: number;
}

const listed = async (key: string, query = "") =>
  (await call(`/api/images${query}`, key)).body.data as Listed[];

before(async () => {
  hub = await startTestHub();
  alice = await issueKey(hub.db, { name: "alice", role: "client", balanceMicros: 2_000_000 });
  bob = await issueKey(hub.db, { name: "bob", role: "client", models: ["local/placeholder"] });
  for (const [key, prompt, size, n] of [
    [alice.key, "a red kite", "320x200", 2],
    [bob.key, "a blue boat", "256x256", 1],
  ] as const) {
    const made = await call("/api/images/generations", key, {
      model: "local/placeholder",
      prompt,
      size,
      n,
    });
    assert.equal(made.status, 200, JSON.stringify(made.body));
  }
  // Base64 answers are not hosted: nothing for the gallery.
  await call("/api/images/generations", alice.key, {
    model: "local/placeholder",
    prompt: "not hosted",
    response_format: "b64_json",
  });
});

after(async () => {
  await hub?.close();
});

describe("GET /api/me", () => {
  it("says who the key is", async () => {
    const me = await call("/api/me", alice.key);
    assert.deepEqual(me.body, {
      object: "key",
      id: alice.id,
      name: "alice",
      role: "client",
      balance: 2,
      models: null,
      rpm: null,
      ipm: null,
    });
    const admin = await call("/api/me", hub.adminKey);
    assert.equal(admin.body.role, "admin");
    assert.deepEqual((await call("/api/me", bob.key)).body.models, ["local/placeholder"]);
  });
});

describe("GET /api/images", () => {
  it("lists a client's own hosted images, newest first, with what made them", async () => {
    const mine = await listed(alice.key);
    assert.equal(mine.length, 2);
    for (const image of mine) {
      assert.deepEqual(
        [image.prompt, image.model, image.size, image.key_id],
        ["a red kite", "local/placeholder", "320x200", alice.id],
      );
      assert.equal(image.cost, 0);
      const bytes = Buffer.from(await (await fetch(image.url)).arrayBuffer());
      const { width, height } = await sharp(bytes).metadata();
      assert.deepEqual({ width, height }, { width: 320, height: 200 }, "its signed URL works");
    }
  });

  it("an admin sees everyone's and filters by key and model; a client cannot ask for another's", async () => {
    assert.equal((await listed(hub.adminKey)).length, 3);
    assert.deepEqual(
      (await listed(hub.adminKey, `?key=${bob.id}`)).map((image) => image.prompt),
      ["a blue boat"],
    );
    assert.equal((await listed(hub.adminKey, "?model=gpt-image-2")).length, 0);
    assert.equal((await call(`/api/images?key=${bob.id}`, alice.key)).status, 403);
  });

  it("forgets images whose URLs have expired", async () => {
    hub.advanceClock(2 * 3600 * 1000);
    assert.deepEqual(await listed(hub.adminKey), []);
  });
});
