import assert from "node:assert/strict";
import type { LookupAddress } from "node:dns";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, test } from "node:test";
import type { HubError } from "../../src/errors.ts";
import {
  createSafeFetcher,
  type ResolveHost,
  type SafeFetcher,
  type SafeFetcherOptions,
  safeFetch,
} from "../../src/net/safe-fetch.ts";
import { hubErrorOf } from "../helpers/errors.ts";

interface TestServer {
  /** `http://host:port` */
  origin: string;
  port: number;
  /** Requests the server received, as `METHOD url`. */
  requests: string[];
  /** TCP connections the server accepted. */
  connections: number;
  /** Headers of the last request. */
  lastHeaders: http.IncomingHttpHeaders | undefined;
  close(): Promise<void>;
}

const servers: TestServer[] = [];
const fetchers: SafeFetcher[] = [];

after(async () => {
  await Promise.all(fetchers.map((fetcher) => fetcher.close()));
  await Promise.all(servers.map((server) => server.close()));
});

async function startServer(
  handler: http.RequestListener = (_request, response) => response.end("hello"),
  options: { host?: string; port?: number } = {},
): Promise<TestServer> {
  const host = options.host ?? "127.0.0.1";
  const requests: string[] = [];
  const server = http.createServer((request, response) => {
    requests.push(`${request.method} ${request.url}`);
    result.lastHeaders = request.headers;
    handler(request, response);
  });
  server.on("connection", () => {
    result.connections++;
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  const result: TestServer = {
    origin: `http://${host.includes(":") ? `[${host}]` : host}:${port}`,
    port,
    requests,
    connections: 0,
    lastHeaders: undefined,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  servers.push(result);
  return result;
}

function fetcherFor(options: SafeFetcherOptions = {}): SafeFetcher {
  const fetcher = createSafeFetcher(options);
  fetchers.push(fetcher);
  return fetcher;
}

/** A resolver answering fixed addresses, counting its calls. */
function answering(...answers: (readonly string[])[]): ResolveHost & { calls: number } {
  const resolve = async (_hostname: string): Promise<LookupAddress[]> => {
    const answer = answers[Math.min(resolve.calls, answers.length - 1)] ?? [];
    resolve.calls++;
    return answer.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
  };
  resolve.calls = 0;
  return resolve;
}

async function assertHubError(
  promise: Promise<unknown>,
  expected: { status: number; code: string; param?: string; message?: RegExp },
): Promise<HubError> {
  const caught = await hubErrorOf(promise);
  assert.equal(caught.status, expected.status, caught.message);
  assert.equal(caught.code, expected.code, caught.message);
  assert.equal(caught.type, "invalid_request_error");
  assert.equal(caught.param, expected.param ?? "image");
  if (expected.message) assert.match(caught.message, expected.message);
  return caught;
}

const ALLOW_LOOPBACK_1 = { allowCidrs: ["127.0.0.1/32"] };
const PNG_BYTES = Buffer.from("89504e470d0a1a0a0000000d49484452", "hex");

describe("allowed fetches", () => {
  test("fetches from an allowed address, sending only a User-Agent and an Accept", async () => {
    const server = await startServer((_request, response) => {
      response.writeHead(200, { "content-type": "image/png" });
      response.end(PNG_BYTES);
    });
    const fetcher = fetcherFor(ALLOW_LOOPBACK_1);
    const result = await fetcher.fetch(`${server.origin}/cat.png`);
    assert.deepEqual(result.bytes, PNG_BYTES);
    assert.equal(result.contentType, "image/png");
    assert.equal(result.finalUrl, `${server.origin}/cat.png`);
    assert.equal(server.lastHeaders?.["user-agent"], "image-hub/0.1");
    assert.equal(server.lastHeaders?.cookie, undefined);
    assert.equal(server.lastHeaders?.authorization, undefined);
  });

  test("a name resolving to an allowed address is fetched", async () => {
    const server = await startServer();
    const lookup = answering(["127.0.0.1"]);
    const fetcher = fetcherFor({ ...ALLOW_LOOPBACK_1, lookup });
    const result = await fetcher.fetch(`http://images.example.test:${server.port}/a`);
    assert.equal(result.bytes.toString(), "hello");
    assert.equal(lookup.calls, 1);
    assert.equal(server.lastHeaders?.host, `images.example.test:${server.port}`);
  });

  test("follows up to 5 redirects, relative and absolute", async () => {
    const server = await startServer((request, response) => {
      const step = Number(request.url?.slice(1));
      if (step < 5) {
        const location = step % 2 === 0 ? `/${step + 1}` : `http://127.0.0.1:${port()}/${step + 1}`;
        response.writeHead(step % 2 === 0 ? 302 : 307, { location });
        response.end();
      } else {
        response.end("arrived");
      }
    });
    const port = () => server.port;
    const fetcher = fetcherFor(ALLOW_LOOPBACK_1);
    const result = await fetcher.fetch(`${server.origin}/0`);
    assert.equal(result.bytes.toString(), "arrived");
    assert.equal(result.finalUrl, `${server.origin}/5`);
    assert.equal(server.requests.length, 6);
  });

  test("safeFetch fetches once with a fetcher of its own", async () => {
    const server = await startServer();
    const result = await safeFetch(`${server.origin}/`, { ...ALLOW_LOOPBACK_1, param: "mask" });
    assert.equal(result.bytes.toString(), "hello");
  });
});

describe("blocked before any connection", () => {
  test("127.0.0.1 is blocked by default, and the message names the range", async () => {
    const server = await startServer();
    await assertHubError(fetcherFor().fetch(`${server.origin}/`), {
      status: 400,
      code: "invalid_image_url",
      message: /blocked address range \(loopback\)/,
    });
    assert.deepEqual(server.requests, []);
  });

  test("[::1] is blocked by default", async () => {
    const server = await startServer(undefined, { host: "::1" });
    await assertHubError(fetcherFor().fetch(`${server.origin}/`), {
      status: 400,
      code: "invalid_image_url",
      message: /\(loopback\)/,
    });
    assert.deepEqual(server.requests, []);
  });

  test("[::ffff:127.0.0.1] is blocked by default", async () => {
    const server = await startServer();
    const url = `http://[::ffff:127.0.0.1]:${server.port}/`;
    await assertHubError(fetcherFor().fetch(url), { status: 400, code: "invalid_image_url" });
    assert.deepEqual(server.requests, []);
  });

  test("WHATWG parsing turns other spellings of 127.0.0.1 into 127.0.0.1", () => {
    for (const host of [
      "2130706433",
      "0177.0.0.1",
      "0x7f000001",
      "0x7f.1",
      "127.1",
      "127.0.0.1.",
    ]) {
      assert.equal(new URL(`http://${host}:8080/`).hostname, "127.0.0.1", host);
    }
  });

  for (const host of ["2130706433", "0177.0.0.1", "0x7f000001", "0x7f.1", "127.1"]) {
    test(`the spelling ${host} is blocked`, async () => {
      const server = await startServer();
      await assertHubError(fetcherFor().fetch(`http://${host}:${server.port}/`), {
        status: 400,
        code: "invalid_image_url",
        message: /\(loopback\)/,
      });
      assert.deepEqual(server.requests, []);
    });
  }

  test("only 127.0.0.1/32 allowed: 127.0.0.2 stays blocked", async () => {
    const server = await startServer(undefined, { host: "127.0.0.2" });
    await assertHubError(fetcherFor(ALLOW_LOOPBACK_1).fetch(`${server.origin}/`), {
      status: 400,
      code: "invalid_image_url",
    });
    assert.deepEqual(server.requests, []);
  });

  for (const url of [
    "file:///etc/passwd",
    "ftp://127.0.0.1/image.png",
    "data:image/png;base64,iVBORw0KGgo=",
    "gopher://127.0.0.1:70/_GET",
    "javascript:alert(1)",
    "ws://127.0.0.1/",
    "blob:http://127.0.0.1/abc",
  ]) {
    test(`the scheme of ${url} is refused`, async () => {
      await assertHubError(fetcherFor(ALLOW_LOOPBACK_1).fetch(url, { param: "image[1]" }), {
        status: 400,
        code: "invalid_image_url",
        param: "image[1]",
        message: /only http: and https:/,
      });
    });
  }

  test("a URL that does not parse is refused", async () => {
    await assertHubError(fetcherFor().fetch("not a url"), {
      status: 400,
      code: "invalid_image_url",
    });
  });

  test("credentials in the URL are refused", async () => {
    const server = await startServer();
    for (const url of [
      `http://user:pass@127.0.0.1:${server.port}/`,
      `http://user@127.0.0.1:${server.port}/`,
      `http://:pass@127.0.0.1:${server.port}/`,
    ]) {
      await assertHubError(fetcherFor(ALLOW_LOOPBACK_1).fetch(url), {
        status: 400,
        code: "invalid_image_url",
        message: /credentials/,
      });
    }
    assert.deepEqual(server.requests, []);
  });

  test("an aborted signal rejects with its reason before any work", async () => {
    const server = await startServer();
    const reason = new Error("client went away");
    await assert.rejects(
      fetcherFor(ALLOW_LOOPBACK_1).fetch(`${server.origin}/`, {
        signal: AbortSignal.abort(reason),
      }),
      (error) => error === reason,
    );
    assert.deepEqual(server.requests, []);
  });
});

describe("blocked at connect time, by resolved address", () => {
  test("localhost (real DNS) is blocked and the message hides the address", async () => {
    const server = await startServer();
    const error = await assertHubError(fetcherFor().fetch(`http://localhost:${server.port}/`), {
      status: 400,
      code: "invalid_image_url",
      message: /resolves to a blocked address range \(loopback\)/,
    });
    assert.doesNotMatch(error.message, /127\.0\.0\.1|::1/);
    assert.deepEqual(server.requests, []);
  });

  for (const [address, range] of [
    ["10.0.0.1", "private"],
    ["127.0.0.1", "loopback"],
    ["169.254.169.254", "link-local"],
    ["::1", "loopback"],
    ["::ffff:127.0.0.1", "loopback"],
  ] as const) {
    test(`a name resolving to ${address} is blocked (${range})`, async () => {
      const server = await startServer();
      const lookup = answering([address]);
      const error = await assertHubError(
        fetcherFor({ lookup }).fetch(`http://evil.example.test:${server.port}/`),
        {
          status: 400,
          code: "invalid_image_url",
          message: new RegExp(`blocked address range \\(${range}\\)`),
        },
      );
      assert.ok(!error.message.includes(address), error.message);
      assert.ok(lookup.calls >= 1);
      assert.equal(server.connections, 0);
    });
  }

  test("https: a name resolving to loopback is refused before any TCP connection", async () => {
    const server = await startServer();
    const lookup = answering(["127.0.0.1"]);
    await assertHubError(
      fetcherFor({ lookup }).fetch(`https://evil.example.test:${server.port}/`),
      {
        status: 400,
        code: "invalid_image_url",
        message: /resolves to a blocked address range \(loopback\)/,
      },
    );
    await assertHubError(fetcherFor().fetch(`https://127.0.0.1:${server.port}/`), {
      status: 400,
      code: "invalid_image_url",
    });
    assert.equal(server.connections, 0);
  });

  test("a name with one public and one blocked address is blocked", async () => {
    const server = await startServer();
    const lookup = answering(["93.184.216.34", "10.0.0.1"]);
    await assertHubError(
      fetcherFor({ lookup }).fetch(`http://mixed.example.test:${server.port}/`),
      {
        status: 400,
        code: "invalid_image_url",
        message: /\(private\)/,
      },
    );
    const lookupAllowedFirst = answering(["127.0.0.1", "127.0.0.2"]);
    await assertHubError(
      fetcherFor({ ...ALLOW_LOOPBACK_1, lookup: lookupAllowedFirst }).fetch(
        `http://mixed.example.test:${server.port}/`,
      ),
      { status: 400, code: "invalid_image_url", message: /\(loopback\)/ },
    );
    assert.deepEqual(server.requests, []);
  });

  test("DNS rebinding: a name that answers allowed, then blocked, is blocked on the new connection", async () => {
    // Same port on two loopback addresses: 127.0.0.1 is allowed, 127.0.0.2 plays the
    // internal service. The allowed server closes its connection so the second fetch connects
    // (and resolves) again.
    const allowed = await startServer((_request, response) => {
      response.writeHead(200, { connection: "close" });
      response.end("public");
    });
    const internal = await startServer(undefined, { host: "127.0.0.2", port: allowed.port });
    const lookup = answering(["127.0.0.1"], ["127.0.0.2"]);
    const fetcher = fetcherFor({ ...ALLOW_LOOPBACK_1, lookup });
    const url = `http://rebind.example.test:${allowed.port}/image.png`;
    const first = await fetcher.fetch(url);
    assert.equal(first.bytes.toString(), "public");
    await assertHubError(fetcher.fetch(url), {
      status: 400,
      code: "invalid_image_url",
      message: /resolves to a blocked address range \(loopback\)/,
    });
    assert.equal(lookup.calls, 2);
    assert.equal(internal.connections, 0);
  });

  test("a name that does not resolve fails as a fetch failure", async () => {
    const lookup: ResolveHost = async (hostname) => {
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
    };
    await assertHubError(fetcherFor({ lookup }).fetch("http://nowhere.example.test/"), {
      status: 400,
      code: "image_fetch_failed",
      message: /could not be resolved/,
    });
  });
});

describe("redirects", () => {
  for (const target of ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.2:PORT/"]) {
    test(`a redirect to ${target} is refused`, async () => {
      const internal = await startServer(undefined, { host: "127.0.0.2" });
      const location = target.replace("PORT", String(internal.port));
      const server = await startServer((_request, response) => {
        response.writeHead(302, { location });
        response.end();
      });
      await assertHubError(fetcherFor(ALLOW_LOOPBACK_1).fetch(`${server.origin}/`), {
        status: 400,
        code: "invalid_image_url",
        message: /redirects to a blocked address range/,
      });
      assert.equal(server.requests.length, 1);
      assert.deepEqual(internal.requests, []);
    });
  }

  test("a redirect to a name resolving to a blocked address is refused at connect", async () => {
    const internal = await startServer(undefined, { host: "127.0.0.2" });
    const server = await startServer((_request, response) => {
      response.writeHead(301, { location: `http://internal.example.test:${internal.port}/` });
      response.end();
    });
    const lookup = answering(["127.0.0.2"]);
    await assertHubError(fetcherFor({ ...ALLOW_LOOPBACK_1, lookup }).fetch(`${server.origin}/`), {
      status: 400,
      code: "invalid_image_url",
      message: /\(loopback\)/,
    });
    assert.deepEqual(internal.requests, []);
  });

  test("a redirect to another scheme or to credentials is refused", async () => {
    for (const location of ["file:///etc/passwd", "http://user:pw@127.0.0.1:1/"]) {
      const server = await startServer((_request, response) => {
        response.writeHead(302, { location });
        response.end();
      });
      await assertHubError(fetcherFor(ALLOW_LOOPBACK_1).fetch(`${server.origin}/`), {
        status: 400,
        code: "invalid_image_url",
      });
    }
  });

  test("more than 5 redirects are refused", async () => {
    const server = await startServer((request, response) => {
      const step = Number(request.url?.slice(1));
      response.writeHead(302, { location: `/${step + 1}` });
      response.end();
    });
    await assertHubError(fetcherFor(ALLOW_LOOPBACK_1).fetch(`${server.origin}/0`), {
      status: 400,
      code: "image_fetch_failed",
      message: /more than 5 times/,
    });
    assert.equal(server.requests.length, 6);
  });

  test("the redirect limit is configurable", async () => {
    const server = await startServer((request, response) => {
      if (request.url === "/0") {
        response.writeHead(302, { location: "/1" });
        response.end();
      } else {
        response.end("ok");
      }
    });
    await assertHubError(
      fetcherFor({ ...ALLOW_LOOPBACK_1, maxRedirects: 0 }).fetch(`${server.origin}/0`),
      { status: 400, code: "image_fetch_failed", message: /more than 0 times/ },
    );
  });

  test("a redirect without Location fails", async () => {
    const server = await startServer((_request, response) => {
      response.writeHead(302);
      response.end();
    });
    await assertHubError(fetcherFor(ALLOW_LOOPBACK_1).fetch(`${server.origin}/`), {
      status: 400,
      code: "image_fetch_failed",
    });
  });
});

describe("size, status and time", () => {
  test("a body over the cap with a Content-Length is refused before it is read", async () => {
    const server = await startServer((_request, response) => {
      response.writeHead(200, { "content-length": "2000" });
      response.end(Buffer.alloc(2000));
    });
    await assertHubError(
      fetcherFor({ ...ALLOW_LOOPBACK_1, maxBytes: 1000 }).fetch(`${server.origin}/`),
      { status: 413, code: "payload_too_large", message: /larger than 1000 bytes/ },
    );
  });

  test("a body over the cap without a Content-Length is cut off while streaming", async () => {
    let finished = false;
    const server = await startServer((_request, response) => {
      response.writeHead(200, { "content-type": "image/png" });
      let sent = 0;
      const timer = setInterval(() => {
        if (sent >= 100 || response.destroyed) {
          clearInterval(timer);
          finished = sent >= 100;
          response.end();
          return;
        }
        sent++;
        response.write(Buffer.alloc(600));
      }, 1);
    });
    await assertHubError(
      fetcherFor({ ...ALLOW_LOOPBACK_1, maxBytes: 1000 }).fetch(`${server.origin}/`),
      { status: 413, code: "payload_too_large" },
    );
    assert.equal(finished, false);
  });

  test("a per-fetch cap tighter than the fetcher's applies", async () => {
    const server = await startServer((_request, response) => response.end(Buffer.alloc(500)));
    const fetcher = fetcherFor(ALLOW_LOOPBACK_1);
    await assertHubError(fetcher.fetch(`${server.origin}/`, { maxBytes: 100 }), {
      status: 413,
      code: "payload_too_large",
    });
    assert.equal((await fetcher.fetch(`${server.origin}/`, { maxBytes: 500 })).bytes.length, 500);
  });

  for (const status of [404, 500]) {
    test(`an upstream ${status} is a fetch failure naming the status`, async () => {
      const server = await startServer((_request, response) => {
        response.writeHead(status);
        response.end("nope");
      });
      await assertHubError(fetcherFor(ALLOW_LOOPBACK_1).fetch(`${server.origin}/`), {
        status: 400,
        code: "image_fetch_failed",
        message: new RegExp(`answered ${status}`),
      });
    });
  }

  test("a server that never answers times out", async () => {
    const server = await startServer(() => {});
    const started = Date.now();
    await assertHubError(
      fetcherFor({ ...ALLOW_LOOPBACK_1, timeoutMs: 300 }).fetch(`${server.origin}/`),
      { status: 400, code: "image_fetch_timeout", message: /timed out/ },
    );
    assert.ok(Date.now() - started < 3000);
  });

  test("a body that stalls times out", async () => {
    const server = await startServer((_request, response) => {
      response.writeHead(200, { "content-length": "1000" });
      response.write(Buffer.alloc(10));
    });
    await assertHubError(
      fetcherFor({ ...ALLOW_LOOPBACK_1, timeoutMs: 300 }).fetch(`${server.origin}/`),
      { status: 400, code: "image_fetch_timeout" },
    );
  });

  test("the caller's signal cancels a fetch in flight with its reason", async () => {
    const server = await startServer(() => {});
    const controller = new AbortController();
    const reason = new Error("request cancelled");
    setTimeout(() => controller.abort(reason), 50);
    await assert.rejects(
      fetcherFor(ALLOW_LOOPBACK_1).fetch(`${server.origin}/`, { signal: controller.signal }),
      (error) => error === reason,
    );
  });

  test("a host that refuses the connection is a fetch failure", async () => {
    const server = await startServer();
    const { port } = server;
    await server.close();
    await assertHubError(fetcherFor(ALLOW_LOOPBACK_1).fetch(`http://127.0.0.1:${port}/`), {
      status: 400,
      code: "image_fetch_failed",
    });
  });
});
