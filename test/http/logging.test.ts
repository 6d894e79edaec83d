/**
 * Logs: every request line carries its request id, and no log line ever carries an API key,
 * the admin key, a prompt or image base64.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { buildApp } from "../../src/app.ts";
import { loadConfig } from "../../src/config.ts";

const ADMIN_KEY = "log-test-admin-key-0123456789";

describe("logging", () => {
  const lines: string[] = [];
  let dataDir: string;
  let app: Awaited<ReturnType<typeof buildApp>>["app"];

  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), "image-hub-log-"));
    const config = loadConfig({ DATA_DIR: dataDir, ADMIN_KEY, LOG_LEVEL: "debug" });
    ({ app } = await buildApp(config, { logStream: { write: (line) => lines.push(line) } }));
    await app.ready();
  });

  after(async () => {
    await app.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("logs request ids but no keys, prompts or base64", async () => {
    const created = await app.inject({
      method: "POST",
      url: "/api/admin/keys",
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
      payload: { name: "logged app" },
    });
    assert.equal(created.statusCode, 201);
    const key = created.json().key as string;

    const input = await sharp({
      create: { width: 64, height: 64, channels: 3, background: "#3366ff" },
    })
      .png()
      .toBuffer();
    const inputBase64 = input.toString("base64");
    const prompt = "a secret prompt about a very particular lighthouse";
    const generated = await app.inject({
      method: "POST",
      url: "/v1/images/generations",
      headers: { authorization: `Bearer ${key}`, "x-request-id": "trace-123" },
      payload: {
        model: "local/placeholder",
        prompt,
        image: inputBase64,
        size: "64x64",
        response_format: "b64_json",
      },
    });
    assert.equal(generated.statusCode, 200);
    assert.equal(generated.headers["x-request-id"], "trace-123");
    const outputBase64 = generated.json().data[0].b64_json as string;

    const wrongKey = `sk-ih-000000000000-${"w".repeat(43)}`;
    const failed = await app.inject({
      method: "POST",
      url: "/v1/images/generations",
      headers: { authorization: `Bearer ${wrongKey}` },
      payload: { prompt },
    });
    assert.equal(failed.statusCode, 401);

    const log = lines.join("");
    assert.ok(log.includes('"reqId":"trace-123"'), "request lines carry the request id");
    const secrets = [
      key,
      ADMIN_KEY,
      wrongKey,
      prompt,
      inputBase64.slice(0, 40),
      outputBase64.slice(0, 40),
    ];
    for (const secret of secrets) {
      assert.ok(!log.includes(secret), `the log must not contain ${secret.slice(0, 12)}…`);
    }

    // One line per image request, matching the reply's record id and the ledger row.
    const recordId = generated.headers["x-image-hub-record-id"];
    const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const requestLines = entries.filter((entry) => entry.msg === "image request");
    assert.equal(requestLines.length, 1, "the 401 never reached the pipeline");
    const [line] = requestLines;
    assert.equal(line?.recordId, recordId);
    assert.equal(line?.keyId, created.json().id);
    assert.equal(line?.requestedModel, "local/placeholder");
    assert.equal(line?.model, "local/placeholder");
    assert.equal(line?.n, 1);
    assert.equal(line?.status, "succeeded");
    assert.equal(typeof line?.totalMs, "number");
    assert.equal(typeof line?.upstreamMs, "number");
    // One line per request, the HTTP facts and the pipeline's summary together.
    const traced = entries.filter((entry) => entry.reqId === "trace-123" && "method" in entry);
    assert.equal(traced.length, 1, "one request line for the traced request");
    assert.equal(traced[0]?.statusCode, 200);
    assert.equal(traced[0]?.method, "POST");
    assert.equal(typeof traced[0]?.ms, "number");
    const refused = entries.filter((entry) => entry.statusCode === 401);
    assert.equal(refused.length, 1, "the 401 has its line too");
    assert.equal(refused[0]?.msg, "request");
  });
});
