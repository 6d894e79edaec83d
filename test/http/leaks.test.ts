/**
 * No secret leaves the hub: a real hub (the OpenAI simulator behind a credential stored through
 * the admin API under MASTER_KEY, the Google simulator behind the environment's key) is driven
 * through every kind of failure, and every response body and every log line is searched.
 *
 * - Nowhere (bodies and logs): API keys (the client's, its secret part, the admin's, keys a
 *   client tried), provider keys, MASTER_KEY, image base64.
 * - Not in error bodies: stack frames, source paths, the upstreams' addresses, DATA_DIR, and what
 *   an upstream said about the hub's own credentials. (Logs are for the operator: stacks and
 *   upstream addresses belong there.)
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { FastifyInstance, InjectOptions } from "fastify";
import sharp from "sharp";
import { buildApp } from "../../src/app.ts";
import { loadConfig } from "../../src/config.ts";
import type { Database } from "../../src/storage/db/types.ts";
import { type GoogleSimulator, startGoogleSimulator } from "../sim/google.ts";
import { type OpenAISimulator, startOpenAISimulator } from "../sim/openai.ts";

const ADMIN_KEY = "leaks-ADMIN-KEY-0123456789abcdef";
const MASTER_KEY = "leaks-MASTER-KEY-0123456789abcdef";
/** The stored OpenAI credential: the simulator accepts it. */
const STORED_SECRET = "sk-upstream-SECRET-stored-0123456789abcdef1234";
/** A second stored credential, pointing at a closed port. */
const UNREACHABLE_SECRET = "sk-upstream-SECRET-unreachable-0123456789-9876";
/** The environment's Google key (GEMINI_API_KEY). */
const PROVIDER_KEY = "AIzaSy-upstream-SECRET-env-0123456789abcdef";
/** Keys clients try; the hub must not repeat them either. */
const TRIED_KEYS = [
  `sk-ih-000000000000-${"TRIED".repeat(8)}abc`,
  "TRIED-not-even-a-hub-key-0123456789",
];
const WRONG_SECRET = "TRIEDsecretTRIEDsecretTRIEDsecretTRIEDsecr";
const AUTH_MAX_FAILURES = 5;
/** What OpenAI says to a wrong key: about the hub's credentials, so never the client's business. */
const OPENAI_KEY_MESSAGE =
  "Incorrect API key provided: sk-upst****1234. You can find your API key at https://platform.openai.com/account/api-keys.";

interface Exchange {
  label: string;
  status: number;
  headers: Record<string, unknown>;
  body: string;
}

describe("secrets and internals never leak", () => {
  const lines: string[] = [];
  const exchanges: Exchange[] = [];
  let dataDir: string;
  let app: FastifyInstance;
  let db: Database;
  let openai: OpenAISimulator;
  let google: GoogleSimulator;
  let closedPort: number;
  let clientKey: string;
  let clientSecret: string;
  let storedCredentialId: string;
  let inputBase64: string;
  let notAnImageBase64: string;
  let addressCounter = 0;

  /** A fresh client address, so that auth failures of one case do not lock out the next. */
  const freshAddress = () => `198.51.100.${++addressCounter}`;

  /** Every string that must appear in no body and no log line. */
  function secrets(): string[] {
    return [
      clientKey,
      clientSecret,
      clientSecret.slice(0, 16),
      ADMIN_KEY,
      MASTER_KEY,
      STORED_SECRET,
      "SECRET-stored",
      UNREACHABLE_SECRET,
      "SECRET-unreachable",
      PROVIDER_KEY,
      "SECRET-env",
      ...TRIED_KEYS,
      "TRIED",
      // Distinctive chunks of image base64 (past the header every PNG shares).
      inputBase64.slice(200, 260),
      inputBase64.slice(-80, -20),
      notAnImageBase64.slice(0, 40),
    ];
  }

  /** What an error body must not show besides secrets. */
  function internals(): (string | RegExp)[] {
    return [
      /\n\s*at\s/,
      /\bat (?:\S+ \()?\S+:\d+:\d+/,
      ".ts:",
      ".js:",
      "node:internal",
      "file://",
      new URL(openai.baseURL).host,
      new URL(google.baseURL).host,
      `127.0.0.1:${closedPort}`,
      "ECONNREFUSED",
      dataDir,
      os.tmpdir(),
      // What the upstreams said about the hub's keys (OPENAI_KEY_MESSAGE, Google's).
      "sk-upst",
      "platform.openai.com",
      "API key not valid",
    ];
  }

  async function send(
    label: string,
    options: InjectOptions & { key?: string | null },
  ): Promise<Exchange> {
    const { key = clientKey, headers = {}, ...rest } = options;
    const response = await app.inject({
      remoteAddress: "127.0.0.1",
      ...rest,
      headers: { ...(key === null ? {} : { authorization: `Bearer ${key}` }), ...headers },
    });
    const exchange = {
      label,
      status: response.statusCode,
      headers: response.headers,
      body: response.body,
    };
    exchanges.push(exchange);
    return exchange;
  }

  const generate = (label: string, payload: Record<string, unknown>, key?: string | null) =>
    send(label, { method: "POST", url: "/v1/images/generations", payload, key });

  function leaksOf(text: string, needles: readonly (string | RegExp)[]): string[] {
    return needles
      .filter((needle) => (typeof needle === "string" ? text.includes(needle) : needle.test(text)))
      .map(String);
  }

  /** The response carries no secret and, when it is an error, nothing internal. */
  function assertClean(exchange: Exchange) {
    const found = leaksOf(exchange.body + JSON.stringify(exchange.headers), secrets());
    if (exchange.status >= 400) found.push(...leaksOf(exchange.body, internals()));
    assert.deepEqual(found, [], `${exchange.label} (${exchange.status}) leaks: ${exchange.body}`);
    if (exchange.status >= 400) {
      const error = JSON.parse(exchange.body).error;
      assert.equal(typeof error?.message, "string", `${exchange.label} is in the OpenAI shape`);
      assert.equal(typeof error?.code, "string");
    }
  }

  function assertError(exchange: Exchange, status: number, code?: string) {
    assert.equal(exchange.status, status, `${exchange.label}: ${exchange.body}`);
    if (code) assert.equal(JSON.parse(exchange.body).error.code, code, exchange.label);
    assertClean(exchange);
  }

  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), "image-hub-leaks-"));
    openai = await startOpenAISimulator({ apiKey: STORED_SECRET });
    google = await startGoogleSimulator({ apiKey: PROVIDER_KEY });
    closedPort = await freePort();
    const config = loadConfig({
      DATA_DIR: dataDir,
      ADMIN_KEY,
      MASTER_KEY,
      GEMINI_API_KEY: PROVIDER_KEY,
      GEMINI_BASE_URL: google.baseURL.replace(/\/v1beta\/?$/, ""),
      OPENAI_BASE_URL: "http://127.0.0.1:9/v1",
      AUTH_MAX_FAILURES: String(AUTH_MAX_FAILURES),
      UPSTREAM_MAX_ATTEMPTS: "1",
      LOG_LEVEL: "debug",
    });
    ({ app, db } = await buildApp(config, { logStream: { write: (line) => lines.push(line) } }));
    await app.ready();

    const created = await send("create a client key", {
      method: "POST",
      url: "/api/admin/keys",
      key: ADMIN_KEY,
      payload: { name: "leaks" },
    });
    assert.equal(created.status, 201);
    clientKey = JSON.parse(created.body).key;
    const match = /^sk-ih-[^-]+-(.+)$/.exec(clientKey);
    assert.ok(match?.[1], "a hub key has an id and a secret");
    clientSecret = match[1];

    const credential = await send("store the OpenAI credential", {
      method: "POST",
      url: "/api/admin/credentials",
      key: ADMIN_KEY,
      payload: {
        provider: "openai",
        name: "simulator",
        api_key: STORED_SECRET,
        base_url: openai.baseURL,
      },
    });
    assert.equal(credential.status, 201, credential.body);
    storedCredentialId = JSON.parse(credential.body).id;

    // Noise, so that its base64 is like nothing else.
    const noise = randomBytes(48 * 48 * 3);
    const png = await sharp(noise, { raw: { width: 48, height: 48, channels: 3 } })
      .png()
      .toBuffer();
    inputBase64 = png.toString("base64");
    notAnImageBase64 = Buffer.from(`NOT-AN-IMAGE ${"marker bytes ".repeat(20)}`).toString("base64");
  });

  after(async () => {
    await app.close();
    await openai.close();
    await google.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("works at all: an edit through the stored credential answers images", async () => {
    const edited = await generate("an edit through OpenAI", {
      model: "dall-e-2",
      prompt: "a lighthouse",
      image: inputBase64,
      size: "256x256",
      response_format: "b64_json",
    });
    assert.equal(edited.status, 200, edited.body);
    assertClean(edited);
    const sent = openai.requests.at(-1);
    assert.equal(sent?.headers.authorization, `Bearer ${STORED_SECRET}`);
  });

  it("bad, malformed, unknown, revoked and wrongly-secret keys: a plain 401", async () => {
    const other = await send("a second client key", {
      method: "POST",
      url: "/api/admin/keys",
      key: ADMIN_KEY,
      payload: { name: "to revoke" },
    });
    const { id, key: revokedKey } = JSON.parse(other.body) as { id: string; key: string };
    await send("revoke it", { method: "DELETE", url: `/api/admin/keys/${id}`, key: ADMIN_KEY });
    const wrongSecretKey = `sk-ih-${id}-${WRONG_SECRET}`;

    const cases: [string, string | null][] = [
      ["no key", null],
      ["a key of another format", TRIED_KEYS[1] as string],
      ["an unknown key", TRIED_KEYS[0] as string],
      ["a revoked key", revokedKey],
      ["a known id with a wrong secret", wrongSecretKey],
    ];
    for (const [label, key] of cases) {
      const exchange = await send(label, {
        method: "POST",
        url: "/v1/images/generations",
        payload: { prompt: "x" },
        key,
        remoteAddress: freshAddress(),
      });
      assertError(exchange, 401, "invalid_api_key");
      if (key) assert.ok(!exchange.body.includes(key));
    }
    assertError(
      await send("a wrong admin key", {
        method: "GET",
        url: "/api/admin/keys",
        key: `${ADMIN_KEY}-TRIED`,
        remoteAddress: freshAddress(),
      }),
      401,
    );
    assertError(
      await send("a client key on an admin endpoint", { method: "GET", url: "/api/admin/keys" }),
      403,
    );
    const address = freshAddress();
    for (let i = 0; i < AUTH_MAX_FAILURES; i += 1) {
      await send("guessing", {
        method: "GET",
        url: "/v1/models",
        key: TRIED_KEYS[0],
        remoteAddress: address,
      });
    }
    const throttled = await send("throttled", {
      method: "GET",
      url: "/v1/models",
      key: TRIED_KEYS[0],
      remoteAddress: address,
    });
    assertError(throttled, 429, "too_many_failed_auth");
    assert.ok(!throttled.body.includes(TRIED_KEYS[0] as string));
    const served = await send("a valid key from it", {
      method: "GET",
      url: "/v1/models",
      remoteAddress: address,
    });
    assert.equal(served.status, 200, "a valid key from a throttled address is served");
  });

  it("invalid bodies: 4xx without echoing image bytes", async () => {
    assertError(
      await send("invalid JSON", {
        method: "POST",
        url: "/v1/images/generations",
        headers: { "content-type": "application/json" },
        payload: `{"prompt": "${inputBase64.slice(0, 300)}`,
      }),
      400,
    );
    assertError(
      await send("text/plain", {
        method: "POST",
        url: "/v1/images/generations",
        headers: { "content-type": "text/plain" },
        payload: inputBase64,
      }),
      415,
    );
    assertError(await generate("n as a string", { prompt: "x", n: "2" }), 400);
    assertError(await generate("no prompt", { image: inputBase64 }), 400);
    assertError(
      await generate("a bad size", { prompt: "x", size: inputBase64.slice(0, 500) }),
      400,
    );
    assertError(
      await generate("base64 that is no image", {
        model: "dall-e-2",
        prompt: "x",
        image: notAnImageBase64,
      }),
      400,
    );
    assertError(
      await generate("a data URL of the wrong type", {
        model: "dall-e-2",
        prompt: "x",
        image: `data:text/plain;base64,${inputBase64}`,
      }),
      400,
    );
    assertError(
      await generate("a truncated image", {
        model: "dall-e-2",
        prompt: "x",
        image: inputBase64.slice(0, inputBase64.length / 2),
      }),
      400,
    );
    assertError(
      await generate("an image URL with credentials", {
        model: "dall-e-2",
        prompt: "x",
        image: `https://user:${STORED_SECRET}@images.example/cat.png`,
      }),
      400,
    );
    assertError(
      await generate("an image URL to a private address", {
        model: "dall-e-2",
        prompt: "x",
        image: "http://10.0.0.1/cat.png",
      }),
      400,
    );
    assertError(await generate("an unknown model", { model: "no-such-model", prompt: "x" }), 404);
    assertError(await send("an unknown URL", { method: "GET", url: "/v1/nothing-here" }), 404);
    assertError(
      await send("a credential with a secret in its base URL", {
        method: "POST",
        url: "/api/admin/credentials",
        key: ADMIN_KEY,
        payload: {
          provider: "openai",
          name: "bad",
          api_key: "x",
          base_url: `https://user:${UNREACHABLE_SECRET}@proxy.example/v1`,
        },
      }),
      400,
    );
    assertError(
      await send("a credential key with a space", {
        method: "POST",
        url: "/api/admin/credentials",
        key: ADMIN_KEY,
        payload: { provider: "openai", name: "bad", api_key: `${UNREACHABLE_SECRET} x` },
      }),
      400,
    );
  });

  it("hosted files: a wrong signature or a missing file says nothing of the disk", async () => {
    const hosted = await generate("a hosted image", {
      model: "local/placeholder",
      prompt: "x",
      size: "64x64",
    });
    assert.equal(hosted.status, 200, hosted.body);
    const url = new URL(JSON.parse(hosted.body).data[0].url);
    assertError(
      await send("a wrong signature", {
        method: "GET",
        url: `${url.pathname}?expires=${url.searchParams.get("expires")}&signature=${"0".repeat(64)}`,
        key: null,
      }),
      403,
    );
    assertClean(
      await send("a path outside the images", {
        method: "GET",
        url: "/files/images/..%2F..%2Fhub.sqlite?expires=1&signature=00",
        key: null,
      }),
    );
    await rm(path.join(dataDir, "images"), { recursive: true, force: true });
    const gone = await send("a file gone from the disk", {
      method: "GET",
      url: `${url.pathname}${url.search}`,
      key: null,
    });
    assert.ok(gone.status >= 400, gone.body);
    assertClean(gone);
  });

  it("upstream failures: 502 without the upstream's words about the hub's key", async () => {
    const dalle = { model: "dall-e-2", prompt: "a lighthouse", response_format: "b64_json" };
    openai.failNext({ status: 500, body: "<html>Traceback at /srv/app.py:12 10.2.3.4</html>" });
    assertError(await generate("an upstream 500 page", dalle), 502);
    openai.failNext({
      status: 500,
      body: {
        error: {
          message: "The server had an error while processing your request. Sorry about that!",
          type: "server_error",
        },
      },
    });
    assertError(await generate("an upstream 500", dalle), 502);
    openai.failNext({ status: 200, body: "this is not JSON" });
    assertError(await generate("an upstream reply that is not JSON", dalle), 502);
    openai.failNext({ status: 200, body: { data: [{ nothing: true }] } });
    assertError(await generate("an upstream reply without images", dalle), 502);
    openai.failNext({
      status: 400,
      body: { error: { message: "Invalid image file or mode for image 1", code: "invalid_image" } },
    });
    assertError(
      await generate("an upstream 400 on an edit", {
        ...dalle,
        image: inputBase64,
        size: "256x256",
      }),
      400,
    );
    google.failNext({
      status: 500,
      body: { error: { code: 500, message: "Internal error encountered.", status: "INTERNAL" } },
    });
    assertError(
      await generate("a Google 500", { model: "gemini-2.5-flash-image", prompt: "a lighthouse" }),
      502,
    );
  });

  // A proxy or gateway in front of the provider may repeat the Authorization header in its error
  // message. Its lines are taken out of `lines`, so the log test below judges the rest alone.
  it("an upstream that echoes the hub's key in its error message: not passed on, not logged", async () => {
    const from = lines.length;
    const calls = openai.requests.length;
    try {
      openai.failNext({
        status: 400,
        body: { error: { message: `Invalid header: Authorization: Bearer ${STORED_SECRET}` } },
      });
      const rejected = await generate("a 400 echoing the key", { prompt: "x" });
      openai.failNext({
        status: 500,
        body: { error: { message: `proxy: upstream refused key ${STORED_SECRET}` } },
      });
      const failed = await generate("a 500 echoing the key", { prompt: "x" });
      assert.equal(openai.requests.length, calls + 2, "both reached the upstream");
      assertError(rejected, 400);
      assertError(failed, 502);
      for (const line of lines.slice(from)) assert.deepEqual(leaksOf(line, secrets()), []);
    } finally {
      lines.splice(from);
    }
  });

  it("the upstream refusing the hub's keys: 502 upstream_auth_failed, its message kept back", async () => {
    openai.failNext({
      status: 401,
      body: {
        error: {
          message: OPENAI_KEY_MESSAGE,
          type: "invalid_request_error",
          param: null,
          code: "invalid_api_key",
        },
      },
    });
    assertError(
      await generate("OpenAI refusing the stored key", { prompt: "a lighthouse" }),
      502,
      "upstream_auth_failed",
    );
    google.failNext({
      status: 400,
      body: {
        error: {
          code: 400,
          message: "API key not valid. Please pass a valid API key.",
          status: "INVALID_ARGUMENT",
          details: [
            { "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: "API_KEY_INVALID" },
          ],
        },
      },
    });
    const refused = await generate("Google refusing the environment's key", {
      model: "gemini-2.5-flash-image",
      prompt: "a lighthouse",
    });
    assert.equal(refused.status, 502, refused.body);
    assertClean(refused);
  });

  it("an unreachable upstream: 502 without its address", async () => {
    await send("disable the working credential", {
      method: "PATCH",
      url: `/api/admin/credentials/${storedCredentialId}`,
      key: ADMIN_KEY,
      payload: { disabled: true },
    });
    const added = await send("a credential at a closed port", {
      method: "POST",
      url: "/api/admin/credentials",
      key: ADMIN_KEY,
      payload: {
        provider: "openai",
        name: "closed",
        api_key: UNREACHABLE_SECRET,
        base_url: `http://127.0.0.1:${closedPort}/v1`,
      },
    });
    assert.equal(added.status, 201, added.body);
    assertError(await generate("an unreachable upstream", { prompt: "a lighthouse" }), 502);
    assertClean(
      await send("list the credentials", {
        method: "GET",
        url: "/api/admin/credentials",
        key: ADMIN_KEY,
      }),
    );
  });

  it("an internal error: 500 with a generic message", async () => {
    const findKey = db.findKey;
    db.findKey = async () => {
      throw new Error(`SQLITE_IOERR: disk I/O error reading ${path.join(dataDir, "hub.sqlite")}`);
    };
    try {
      const failed = await send("a database failure", { method: "GET", url: "/v1/models" });
      assertError(failed, 500, "internal_error");
    } finally {
      db.findKey = findKey;
    }
  });

  it("no log line carries a key, a provider key, MASTER_KEY or image base64", () => {
    assert.ok(lines.length > exchanges.length, "every request was logged");
    const log = lines.join("");
    assert.ok(log.includes("SQLITE_IOERR"), "the internal error's cause is in the log");
    for (const line of lines) {
      assert.deepEqual(leaksOf(line, secrets()), [], `the log line leaks: ${line.slice(0, 300)}`);
    }
  });
});

/** A loopback port nothing listens on (listened on once, then closed). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
