/**
 * The SSRF battery: every way a URL from a client (or from a provider) could make the hub
 * connect somewhere it must not, each checked to reach nothing.
 *
 * "Nothing" is proved three ways, whichever applies:
 * - a real target server listens on every local address (dual-stack `::`, which also takes
 *   127.0.0.0/8, 0.0.0.0 and IPv4-mapped connections) and counts TCP connections; a control test
 *   shows each loopback spelling does reach it once the policy allows it, so its zero is real;
 * - undici's diagnostics channels report every connection the fetcher starts and completes: a
 *   URL refused before any connection shows no connect attempt at all, a name refused by the
 *   connect-time lookup shows no completed connection;
 * - the injected resolver counts its calls: a literal address is judged without one.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import diagnosticsChannel from "node:diagnostics_channel";
import type { LookupAddress } from "node:dns";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, beforeEach, describe, test } from "node:test";
import sharp from "sharp";
import type { HubError } from "../../src/errors.ts";
import { createAddressPolicy } from "../../src/net/address-policy.ts";
import {
  createSafeFetcher,
  type ResolveHost,
  type SafeFetcher,
  type SafeFetcherOptions,
} from "../../src/net/safe-fetch.ts";
import { hubErrorOf } from "../helpers/errors.ts";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import { type OpenAISimulator, startOpenAISimulator } from "../sim/openai.ts";

interface CountingServer {
  port: number;
  /** TCP connections accepted. */
  connections: number;
  /** Requests received, as `METHOD url`. */
  requests: string[];
  close(): Promise<void>;
}

/** The address the "public" image host and the redirector listen on; allowed by the fetchers. */
const PUBLIC_HOST = "127.1.2.3";
const ALLOW_PUBLIC = [`${PUBLIC_HOST}/32`];

const servers: CountingServer[] = [];
const fetchers: SafeFetcher[] = [];
let png: Buffer;
/** Listens on every local address and port TARGET.port: what an SSRF would reach. */
let target: CountingServer;
/** Whether the target also listens on IPv6 (a host without IPv6 gets an IPv4-only target). */
let targetHasIPv6 = true;
/** At PUBLIC_HOST: `/to?u=<url>&hops=<n>` redirects n times to itself, then to `u`. */
let redirector: CountingServer;

async function startCountingServer(
  host: string,
  port = 0,
  handler: http.RequestListener = (_request, response) => {
    response.writeHead(200, { "content-type": "image/png" });
    response.end(png);
  },
): Promise<CountingServer> {
  const requests: string[] = [];
  const server = http.createServer((request, response) => {
    requests.push(`${request.method} ${request.url}`);
    handler(request, response);
  });
  const result: CountingServer = {
    port: 0,
    connections: 0,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  server.on("connection", () => {
    result.connections++;
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port, host, ipv6Only: false }, resolve);
  });
  result.port = (server.address() as AddressInfo).port;
  servers.push(result);
  return result;
}

function redirectHandler(request: http.IncomingMessage, response: http.ServerResponse): void {
  const url = new URL(request.url ?? "/", "http://redirector");
  const hops = Number(url.searchParams.get("hops") ?? 0);
  const status = Number(url.searchParams.get("status") ?? 302);
  if (hops > 0) {
    url.searchParams.set("hops", String(hops - 1));
    response.writeHead(status, { location: `${url.pathname}${url.search}` });
  } else {
    // HTTP headers are bytes: a non-ASCII host travels percent-encoded, which URL parsing undoes.
    const location = (url.searchParams.get("u") ?? "/").replace(/[^\x20-\x7e]/g, (character) =>
      encodeURIComponent(character),
    );
    response.writeHead(status, { location });
  }
  response.end();
}

/** The redirector's URL that sends the fetcher to `location` after `hops` more redirects. */
function redirectTo(location: string, options: { hops?: number; status?: number } = {}): string {
  const query = new URLSearchParams({
    u: location,
    hops: String(options.hops ?? 0),
    status: String(options.status ?? 302),
  });
  return `http://${PUBLIC_HOST}:${redirector.port}/to?${query}`;
}

/** Every connection undici starts (`attempts`) and completes (`connected`), by host name. */
const attempts: string[] = [];
const connected: string[] = [];
const onBeforeConnect = (message: unknown) => {
  attempts.push((message as { connectParams: { hostname: string } }).connectParams.hostname);
};
const onConnected = (message: unknown) => {
  connected.push((message as { connectParams: { hostname: string } }).connectParams.hostname);
};

before(async () => {
  png = await sharp({ create: { width: 4, height: 4, channels: 3, background: "#0a0" } })
    .png()
    .toBuffer();
  try {
    target = await startCountingServer("::");
  } catch {
    targetHasIPv6 = false;
    target = await startCountingServer("0.0.0.0");
  }
  redirector = await startCountingServer(PUBLIC_HOST, 0, redirectHandler);
  diagnosticsChannel.subscribe("undici:client:beforeConnect", onBeforeConnect);
  diagnosticsChannel.subscribe("undici:client:connected", onConnected);
});

after(async () => {
  diagnosticsChannel.unsubscribe("undici:client:beforeConnect", onBeforeConnect);
  diagnosticsChannel.unsubscribe("undici:client:connected", onConnected);
  await Promise.all(fetchers.map((fetcher) => fetcher.close()));
  await Promise.all(servers.map((server) => server.close()));
});

beforeEach(() => {
  attempts.length = 0;
  connected.length = 0;
  target.connections = 0;
  target.requests.length = 0;
  redirector.requests.length = 0;
});

/** A resolver answering from a table (unknown names do not resolve), counting its calls. */
function resolver(
  table: Record<string, string | readonly string[] | (() => readonly string[])>,
): ResolveHost & { calls: string[] } {
  const resolve = async (hostname: string): Promise<LookupAddress[]> => {
    resolve.calls.push(hostname);
    const entry = table[hostname.replace(/\.$/, "").toLowerCase()];
    if (entry === undefined) {
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
    }
    const answer =
      typeof entry === "function" ? entry() : typeof entry === "string" ? [entry] : entry;
    return answer.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
  };
  resolve.calls = [] as string[];
  return resolve;
}

/** Short time limits, so that a removed protection fails fast instead of hanging. */
function fetcherFor(options: SafeFetcherOptions = {}): SafeFetcher {
  const fetcher = createSafeFetcher({ connectTimeoutMs: 1000, timeoutMs: 2000, ...options });
  fetchers.push(fetcher);
  return fetcher;
}

function hostOf(address: string): string {
  return address.includes(":") ? `[${address}]` : address;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

async function assertRefused(
  promise: Promise<unknown>,
  expected: { code?: string; message?: RegExp; param?: string } = {},
): Promise<HubError> {
  const error = await hubErrorOf(promise);
  assert.equal(error.status, 400, error.message);
  assert.equal(error.type, "invalid_request_error");
  assert.equal(error.code, expected.code ?? "invalid_image_url", error.message);
  assert.equal(error.param, expected.param ?? "image");
  if (expected.message) assert.match(error.message, expected.message);
  return error;
}

/** Nothing reached the target, and no connection was even started. */
function assertNoConnectionAttempted(): void {
  assert.equal(target.connections, 0, "the target saw a connection");
  assert.deepEqual(attempts, [], "a connection was started");
}

/** Nothing reached the target, and no connection was completed but to `allowed` hosts. */
function assertNothingReached(allowed: readonly string[] = []): void {
  assert.equal(target.connections, 0, "the target saw a connection");
  assert.deepEqual(target.requests, []);
  const unexpected = connected.filter((host) => !allowed.includes(host));
  assert.deepEqual(unexpected, [], "a connection was completed");
}

interface BlockedClass {
  address: string;
  /** The IANA block it belongs to. */
  block: string;
  /** The range class the refusal names. */
  reason: string;
}

/** One or two addresses of every IANA special-purpose block, v4 and v6. */
const BLOCKED_CLASSES: readonly BlockedClass[] = [
  { address: "0.0.0.0", block: "0.0.0.0/8", reason: "unspecified" },
  { address: "0.1.2.3", block: "0.0.0.0/8", reason: "unspecified" },
  { address: "10.0.0.1", block: "10.0.0.0/8", reason: "private" },
  { address: "10.255.255.254", block: "10.0.0.0/8", reason: "private" },
  { address: "100.64.0.1", block: "100.64.0.0/10", reason: "carrier-grade NAT" },
  { address: "100.127.255.254", block: "100.64.0.0/10", reason: "carrier-grade NAT" },
  { address: "127.0.0.1", block: "127.0.0.0/8", reason: "loopback" },
  { address: "127.255.255.254", block: "127.0.0.0/8", reason: "loopback" },
  { address: "169.254.169.254", block: "169.254.0.0/16 (metadata)", reason: "link-local" },
  { address: "169.254.0.1", block: "169.254.0.0/16", reason: "link-local" },
  { address: "172.16.0.1", block: "172.16.0.0/12", reason: "private" },
  { address: "172.31.255.254", block: "172.16.0.0/12", reason: "private" },
  { address: "192.0.0.1", block: "192.0.0.0/24", reason: "reserved" },
  { address: "192.0.0.170", block: "192.0.0.0/24", reason: "reserved" },
  { address: "192.0.2.1", block: "192.0.2.0/24", reason: "reserved" },
  { address: "192.88.99.1", block: "192.88.99.0/24", reason: "reserved" },
  { address: "192.168.0.1", block: "192.168.0.0/16", reason: "private" },
  { address: "192.168.255.254", block: "192.168.0.0/16", reason: "private" },
  { address: "198.18.0.1", block: "198.18.0.0/15", reason: "reserved" },
  { address: "198.19.255.254", block: "198.18.0.0/15", reason: "reserved" },
  { address: "198.51.100.1", block: "198.51.100.0/24", reason: "reserved" },
  { address: "203.0.113.1", block: "203.0.113.0/24", reason: "reserved" },
  { address: "224.0.0.1", block: "224.0.0.0/4", reason: "multicast" },
  { address: "239.255.255.250", block: "224.0.0.0/4", reason: "multicast" },
  { address: "240.0.0.1", block: "240.0.0.0/4", reason: "reserved" },
  { address: "255.255.255.254", block: "240.0.0.0/4", reason: "reserved" },
  { address: "255.255.255.255", block: "255.255.255.255/32", reason: "broadcast" },
  { address: "::", block: "::/128", reason: "unspecified" },
  { address: "::1", block: "::1/128", reason: "loopback" },
  { address: "::ffff:127.0.0.1", block: "::ffff:0:0/96", reason: "loopback" },
  { address: "::ffff:10.0.0.1", block: "::ffff:0:0/96", reason: "private" },
  { address: "::ffff:169.254.169.254", block: "::ffff:0:0/96", reason: "link-local" },
  { address: "::ffff:0.0.0.0", block: "::ffff:0:0/96", reason: "unspecified" },
  { address: "64:ff9b::7f00:1", block: "64:ff9b::/96", reason: "NAT64 to loopback" },
  { address: "64:ff9b::a9fe:a9fe", block: "64:ff9b::/96", reason: "NAT64 to link-local" },
  { address: "64:ff9b::c0a8:101", block: "64:ff9b::/96", reason: "NAT64 to private" },
  { address: "64:ff9b:1::a00:1", block: "64:ff9b:1::/48", reason: "NAT64" },
  { address: "100::1", block: "100::/64", reason: "discard-only" },
  { address: "2001::1", block: "2001::/32 (Teredo)", reason: "Teredo" },
  { address: "2001:2::1", block: "2001:2::/48", reason: "benchmarking" },
  { address: "2001:5::1", block: "2001::/23", reason: "reserved" },
  { address: "2001:db8::1", block: "2001:db8::/32", reason: "reserved" },
  { address: "2002:7f00:1::1", block: "2002::/16", reason: "6to4" },
  { address: "2002:a9fe:a9fe::1", block: "2002::/16", reason: "6to4" },
  { address: "2002:c0a8:101::1", block: "2002::/16", reason: "6to4" },
  { address: "fc00::1", block: "fc00::/7", reason: "unique-local" },
  { address: "fd00::1", block: "fc00::/7", reason: "unique-local" },
  { address: "fe80::1", block: "fe80::/10", reason: "link-local" },
  { address: "febf::1", block: "fe80::/10", reason: "link-local" },
  { address: "fec0::1", block: "fec0::/10", reason: "site-local" },
  { address: "ff02::1", block: "ff00::/8", reason: "multicast" },
  { address: "ff0e::1", block: "ff00::/8", reason: "multicast" },
  { address: "3fff::1", block: "3fff::/20", reason: "reserved" },
  { address: "5f00::1", block: "5f00::/16", reason: "segment routing" },
  { address: "::7f00:1", block: "::/96 (IPv4-compatible)", reason: "IPv4-compatible" },
  { address: "::ffff:0:7f00:1", block: "::ffff:0:0:0/96", reason: "IPv4-translated" },
];

/** Other spellings of loopback (and one of the metadata address) in a URL's host. */
const SPELLINGS: readonly [host: string, meaning: string][] = [
  ["2130706433", "decimal 127.0.0.1"],
  ["0177.0.0.1", "octal"],
  ["017700000001", "octal, one number"],
  ["0x7f.0.0.1", "hex"],
  ["0x7f000001", "hex, one number"],
  ["0X7F.0X0.0X0.0X1", "upper-case hex"],
  ["0x7f.0.0.01", "mixed hex and octal"],
  ["0177.0x0.1", "mixed octal and hex, short"],
  ["127.000.000.001", "zero-padded"],
  ["127.1", "short"],
  ["127.0.1", "short, three parts"],
  ["0x7f.1", "short hex"],
  ["127.0.0.1.", "trailing dot"],
  ["１２７.０.０.１", "full-width digits"],
  ["127。0。0。1", "ideographic full stops"],
  ["%31%32%37.0.0.1", "percent-encoded"],
  ["0", "0, which is 0.0.0.0"],
  ["0x0", "hex 0.0.0.0"],
  ["[::ffff:7f00:1]", "IPv4-mapped, hex"],
  ["[::ffff:127.0.0.1]", "IPv4-mapped, dotted"],
  ["[::FFFF:7F00:1]", "IPv4-mapped, upper case"],
  ["[0:0:0:0:0:ffff:7f00:1]", "IPv4-mapped, uncompressed"],
  ["[0000:0000:0000:0000:0000:0000:0000:0001]", "::1 uncompressed"],
  ["[::127.0.0.1]", "IPv4-compatible"],
  ["[64:ff9b::127.0.0.1]", "NAT64, dotted"],
  ["[2002:7f00:0001::]", "6to4 of 127.0.0.1"],
  ["2852039166", "decimal 169.254.169.254"],
  ["0xa9fea9fe", "hex 169.254.169.254"],
  ["0251.0376.0251.0376", "octal 169.254.169.254"],
  ["169.254.43518", "short 169.254.169.254"],
  ["0xa9.0xfe.0xa9.0xfe", "dotted hex 169.254.169.254"],
  ["[::ffff:a9fe:a9fe]", "IPv4-mapped 169.254.169.254"],
  ["167772161", "decimal 10.0.0.1"],
  ["3232235777", "decimal 192.168.1.1"],
];

describe("control: the target is reachable when the policy allows it", () => {
  // Without this, a zero at the target could mean the spelling never led there at all.
  for (const host of [
    "127.0.0.1",
    "127.255.255.254",
    "0.0.0.0",
    "[::1]",
    "[::]",
    "[::ffff:7f00:1]",
    "2130706433",
    "0177.0.0.1",
    "0x7f.1",
    "127.1",
    "0",
  ]) {
    test(`http://${host}:PORT/ reaches the target with an allow-all policy`, async (context) => {
      if (host.startsWith("[") && !targetHasIPv6) context.skip("no IPv6 on this host");
      const fetcher = fetcherFor({ allowCidrs: ["0.0.0.0/0", "::/0"] });
      const result = await fetcher.fetch(`http://${host}:${target.port}/`);
      assert.deepEqual(result.bytes, png);
      assert.equal(target.requests.length, 1);
    });
  }

  test("a name resolving to loopback reaches the target with an allow-all policy", async () => {
    const lookup = resolver({ "inside.example.test": "127.0.0.1" });
    const fetcher = fetcherFor({ allowCidrs: ["0.0.0.0/0", "::/0"], lookup });
    await fetcher.fetch(`http://inside.example.test:${target.port}/`);
    assert.equal(target.requests.length, 1);
  });
});

describe("every blocked address class, written in the URL", () => {
  for (const { address, block, reason } of BLOCKED_CLASSES) {
    test(`${address} (${block}) is refused before any connection`, async () => {
      const lookup = resolver({});
      const url = `http://${hostOf(address)}:${target.port}/latest/meta-data/`;
      await assertRefused(fetcherFor({ lookup }).fetch(url), {
        message: new RegExp(`points to a blocked address range \\(${escapeRegExp(reason)}\\)`),
      });
      assert.deepEqual(lookup.calls, []);
      assertNoConnectionAttempted();
    });
  }

  test("https: is judged the same, before any TLS connection", async () => {
    for (const address of ["127.0.0.1", "::1", "169.254.169.254", "10.0.0.1"]) {
      await assertRefused(fetcherFor().fetch(`https://${hostOf(address)}:${target.port}/`));
    }
    assertNoConnectionAttempted();
  });
});

describe("every blocked address class, behind a host name", () => {
  for (const [index, { address, block, reason }] of BLOCKED_CLASSES.entries()) {
    test(`a name resolving to ${address} (${block}) is refused at connect`, async () => {
      const name = `c${index}.blocked.example.test`;
      const lookup = resolver({ [name]: address });
      const error = await assertRefused(
        fetcherFor({ lookup }).fetch(`http://${name}:${target.port}/`),
        {
          message: new RegExp(`resolves to a blocked address range \\(${escapeRegExp(reason)}\\)`),
        },
      );
      // Clients learn the class of the range, never the address it resolved to.
      assert.ok(!error.message.includes(address), error.message);
      assert.deepEqual(lookup.calls, [name]);
      assertNothingReached();
    });
  }

  for (const name of ["localhost", "LOCALHOST", "ⓛⓞⓒⓐⓛⓗⓞⓢⓣ"]) {
    test(`${name}, through the system resolver, is refused`, async () => {
      await assertRefused(fetcherFor().fetch(`http://${name}:${target.port}/`), {
        message: /resolves to a blocked address range \(loopback\)/,
      });
      assertNothingReached();
    });
  }

  test("an answer with a zone id (fe80::1%eth0, ::1%lo) is refused", async () => {
    for (const address of ["fe80::1%eth0", "::1%lo"]) {
      const lookup = resolver({ "zoned.example.test": address });
      await assertRefused(
        fetcherFor({ lookup }).fetch(`http://zoned.example.test:${target.port}/`),
      );
    }
    assertNothingReached();
  });

  test("a name with a trailing dot or in upper case is judged by its answer", async () => {
    const lookup = resolver({ "internal.example.test": "10.0.0.1" });
    for (const name of ["internal.example.test.", "INTERNAL.Example.TEST"]) {
      await assertRefused(fetcherFor({ lookup }).fetch(`http://${name}:${target.port}/`), {
        message: /resolves to a blocked address range \(private\)/,
      });
    }
    assertNothingReached();
  });

  test("an answer that is not a canonical IP address is refused, not passed on", async () => {
    for (const [answer, reason] of [
      ["not-an-address", "not an IP address"],
      ["127.1", "loopback"],
      ["0x7f.0.0.1", "loopback"],
    ]) {
      const lookup = resolver({ "odd.example.test": answer ?? "" });
      await assertRefused(fetcherFor({ lookup }).fetch(`http://odd.example.test:${target.port}/`), {
        message: new RegExp(`\\(${reason}\\)`),
      });
    }
    assertNothingReached();
  });

  test("the host's own interface addresses are refused", async (context) => {
    const policy = createAddressPolicy();
    // Interface addresses are this machine: the target listens on all of them.
    const own = Object.values(os.networkInterfaces())
      .flatMap((entries) => entries ?? [])
      .map((entry) => entry.address)
      .filter((address) => !policy(address).allowed);
    if (own.length === 0) context.skip("no interface address in a blocked range");
    for (const address of own) {
      const lookup = resolver({ "self.example.test": address });
      await assertRefused(fetcherFor({ lookup }).fetch(`http://self.example.test:${target.port}/`));
      await assertRefused(fetcherFor().fetch(`http://${hostOf(address)}:${target.port}/`));
    }
    assertNothingReached();
  });
});

describe("other spellings of an address", () => {
  for (const [host, meaning] of SPELLINGS) {
    test(`http://${host}/ (${meaning}) is refused before any connection`, async () => {
      const lookup = resolver({});
      await assertRefused(fetcherFor({ lookup }).fetch(`http://${host}:${target.port}/`), {
        message: /points to a blocked address range/,
      });
      assert.deepEqual(lookup.calls, []);
      assertNoConnectionAttempted();
    });
  }

  test("backslashes and tabs in the authority do not hide the host", async () => {
    for (const url of [
      `http:\\\\127.0.0.1:${target.port}\\x`,
      `http:/\\127.0.0.1:${target.port}/`,
      `http://127.0.0.1\t:${target.port}/`,
      `http://127.0.0.1:${target.port}#@example.com/`,
      `http://127.0.0.1:${target.port}?@example.com/`,
      `http://@127.0.0.1:${target.port}/`,
    ]) {
      await assertRefused(fetcherFor().fetch(url), { message: /blocked address range/ });
    }
    assertNoConnectionAttempted();
  });

  test("IPv6 zone ids in the URL are refused as invalid URLs", async () => {
    for (const host of ["[fe80::1%25eth0]", "[fe80::1%eth0]", "[::1%25lo]", "[::1%lo]"]) {
      await assertRefused(fetcherFor().fetch(`http://${host}:${target.port}/`), {
        message: /not a valid URL/,
      });
    }
    assertNoConnectionAttempted();
  });

  test("out-of-range numbers are invalid URLs, not wrapped around", async () => {
    for (const host of ["4294967297", "0x100000000", "256.0.0.1", "127.0.0.256"]) {
      await assertRefused(fetcherFor().fetch(`http://${host}:${target.port}/`), {
        message: /not a valid URL/,
      });
    }
    assertNoConnectionAttempted();
  });
});

describe("redirects into blocked addresses", () => {
  const allowed = [PUBLIC_HOST];

  for (const [index, { address, block, reason }] of BLOCKED_CLASSES.entries()) {
    test(`a redirect to ${address} (${block}), written or behind a name, is refused`, async () => {
      const name = `r${index}.blocked.example.test`;
      const lookup = resolver({ [name]: address });
      const fetcher = fetcherFor({ allowCidrs: ALLOW_PUBLIC, lookup });
      const status = [301, 302, 303, 307, 308][index % 5];
      const reasonPattern = escapeRegExp(reason);
      await assertRefused(
        fetcher.fetch(redirectTo(`http://${hostOf(address)}:${target.port}/`, { status })),
        { message: new RegExp(`redirects to a blocked address range \\(${reasonPattern}\\)`) },
      );
      await assertRefused(fetcher.fetch(redirectTo(`http://${name}:${target.port}/`, { status })), {
        message: new RegExp(`resolves to a blocked address range \\(${reasonPattern}\\)`),
      });
      assert.equal(redirector.requests.length, 2);
      assertNothingReached(allowed);
    });
  }

  test("a redirect to another spelling of loopback or metadata is refused", async () => {
    const fetcher = fetcherFor({ allowCidrs: ALLOW_PUBLIC });
    for (const [host] of SPELLINGS) {
      await assertRefused(fetcher.fetch(redirectTo(`http://${host}:${target.port}/`)), {
        message: /redirects to a blocked address range/,
      });
    }
    assert.equal(redirector.requests.length, SPELLINGS.length);
    assertNothingReached(allowed);
  });

  test("relative redirects that change the host are judged like absolute ones", async () => {
    const fetcher = fetcherFor({ allowCidrs: ALLOW_PUBLIC });
    for (const location of [
      `//127.0.0.1:${target.port}/`,
      `/\\127.0.0.1:${target.port}/`,
      `\\\\[::1]:${target.port}/`,
      `//2130706433:${target.port}/`,
    ]) {
      await assertRefused(fetcher.fetch(redirectTo(location)), {
        message: /redirects to a blocked address range/,
      });
    }
    assertNothingReached(allowed);
  });

  test("a chain of allowed redirects ending in a blocked address is refused at its end", async () => {
    const fetcher = fetcherFor({ allowCidrs: ALLOW_PUBLIC });
    await assertRefused(
      fetcher.fetch(redirectTo(`http://169.254.169.254:${target.port}/`, { hops: 4 })),
      { message: /redirects to a blocked address range \(link-local\)/ },
    );
    assert.equal(redirector.requests.length, 5);
    assertNothingReached(allowed);
  });

  test("a redirect to a name that rebinds to loopback on the new connection is refused", async () => {
    // The first answer is the allowed redirector; the redirect goes to another port, so a new
    // connection resolves the name again and gets the second answer.
    let calls = 0;
    const lookup = resolver({
      "rebind.example.test": () => (calls++ === 0 ? [PUBLIC_HOST] : ["127.0.0.1"]),
    });
    const fetcher = fetcherFor({ allowCidrs: ALLOW_PUBLIC, lookup });
    const start = redirectTo(`http://rebind.example.test:${target.port}/`).replace(
      PUBLIC_HOST,
      "rebind.example.test",
    );
    await assertRefused(fetcher.fetch(start), {
      message: /resolves to a blocked address range \(loopback\)/,
    });
    assert.equal(redirector.requests.length, 1);
    assert.deepEqual(lookup.calls, ["rebind.example.test", "rebind.example.test"]);
    assertNothingReached(["rebind.example.test"]);
  });
});

describe("DNS answers that change between check and connect", () => {
  /** An allowed image host and an internal service on the same port, told apart by address. */
  async function publicAndInternal(): Promise<{
    image: CountingServer;
    internal: CountingServer;
  }> {
    const image = await startCountingServer(PUBLIC_HOST, 0, (_request, response) => {
      response.writeHead(200, { "content-type": "image/png", connection: "close" });
      response.end(png);
    });
    const internal = await startCountingServer("127.0.0.1", image.port);
    return { image, internal };
  }

  test("one fetch resolves once: the address judged is the address connected to", async () => {
    // A fetcher that resolved to check and again to connect would connect to the second,
    // blocked answer here.
    const { image, internal } = await publicAndInternal();
    let calls = 0;
    const lookup = resolver({
      "rebind.example.test": () => (calls++ === 0 ? [PUBLIC_HOST] : ["127.0.0.1"]),
    });
    const fetcher = fetcherFor({ allowCidrs: ALLOW_PUBLIC, lookup });
    const result = await fetcher.fetch(`http://rebind.example.test:${image.port}/a.png`);
    assert.deepEqual(result.bytes, png);
    assert.deepEqual(lookup.calls, ["rebind.example.test"]);
    assert.equal(image.requests.length, 1);
    assert.equal(internal.connections, 0);
  });

  test("an answer that turns internal is refused on the next connection", async () => {
    const { image, internal } = await publicAndInternal();
    let calls = 0;
    const lookup = resolver({
      "rebind.example.test": () => (calls++ === 0 ? [PUBLIC_HOST] : ["127.0.0.1"]),
    });
    const fetcher = fetcherFor({ allowCidrs: ALLOW_PUBLIC, lookup });
    const url = `http://rebind.example.test:${image.port}/a.png`;
    await fetcher.fetch(url);
    await assertRefused(fetcher.fetch(url), {
      message: /resolves to a blocked address range \(loopback\)/,
    });
    assert.equal(lookup.calls.length, 2);
    assert.equal(internal.connections, 0);
  });

  test("an answer that flips every time never reaches the internal address", async () => {
    const { image, internal } = await publicAndInternal();
    let calls = 0;
    const lookup = resolver({
      "flip.example.test": () => (calls++ % 2 === 0 ? [PUBLIC_HOST] : ["127.0.0.1"]),
    });
    const fetcher = fetcherFor({ allowCidrs: ALLOW_PUBLIC, lookup });
    let fetched = 0;
    for (let round = 0; round < 6; round++) {
      try {
        await fetcher.fetch(`http://flip.example.test:${image.port}/a.png`);
        fetched++;
      } catch (error) {
        assert.equal((error as HubError).code, "invalid_image_url");
      }
    }
    assert.equal(fetched, 3);
    assert.equal(image.requests.length, 3);
    assert.equal(internal.connections, 0);
  });

  test("an answer mixing the allowed and an internal address is refused, in either order", async () => {
    const { image, internal } = await publicAndInternal();
    for (const answer of [
      [PUBLIC_HOST, "127.0.0.1"],
      ["127.0.0.1", PUBLIC_HOST],
      [PUBLIC_HOST, "::1"],
      ["::ffff:127.0.0.1", PUBLIC_HOST],
    ]) {
      const lookup = resolver({ "mixed.example.test": answer });
      const fetcher = fetcherFor({ allowCidrs: ALLOW_PUBLIC, lookup });
      await assertRefused(fetcher.fetch(`http://mixed.example.test:${image.port}/a.png`), {
        message: /resolves to a blocked address range \(loopback\)/,
      });
    }
    assert.equal(image.connections, 0);
    assert.equal(internal.connections, 0);
  });
});

describe("schemes other than http and https", () => {
  let canaryDir: string;
  let canary: string;
  const secret = `canary-${randomBytes(8).toString("hex")}`;

  before(async () => {
    canaryDir = await mkdtemp(path.join(os.tmpdir(), "image-hub-ssrf-"));
    canary = path.join(canaryDir, "secret.png");
    await writeFile(canary, secret);
  });

  after(async () => {
    await rm(canaryDir, { recursive: true, force: true });
  });

  test("file: URLs are refused and the file is not read", async () => {
    const fetcher = fetcherFor({ allowCidrs: ALLOW_PUBLIC });
    for (const url of [
      `file://${canary}`,
      `file://localhost${canary}`,
      `FILE://${canary}`,
      ` file://${canary}`,
      `\tfile://${canary}`,
      "file:///etc/passwd",
      `file://${PUBLIC_HOST}/etc/passwd`,
    ]) {
      const error = await assertRefused(fetcher.fetch(url), { message: /only http: and https:/ });
      assert.ok(!error.message.includes(secret));
    }
    assertNoConnectionAttempted();
  });

  for (const scheme of [
    "ftp",
    "ftps",
    "gopher",
    "ws",
    "wss",
    "dict",
    "ldap",
    "tftp",
    "sftp",
    "ssh",
    "telnet",
    "smb",
    "jar:http",
  ]) {
    test(`${scheme}: to an allowed address is refused without a connection`, async () => {
      const fetcher = fetcherFor({ allowCidrs: ALLOW_PUBLIC });
      await assertRefused(fetcher.fetch(`${scheme}://${PUBLIC_HOST}:${target.port}/x.png`), {
        message: /only http: and https:/,
      });
      assertNoConnectionAttempted();
    });
  }

  for (const url of [
    "javascript:fetch('http://127.0.0.1/')",
    "blob:http://127.1.2.3/0b9c3a1e-6c2a-4f4e-9d0e-7b1b1b1b1b1b",
    "data:image/png;base64,iVBORw0KGgo=",
    "about:blank",
    "mailto:root@localhost",
    "view-source:http://127.0.0.1/",
  ]) {
    test(`${url.split(":")[0]}: is refused`, async () => {
      await assertRefused(fetcherFor({ allowCidrs: ALLOW_PUBLIC }).fetch(url), {
        message: /only http: and https:/,
      });
      assertNoConnectionAttempted();
    });
  }

  test("a data: URL of any size is refused by the fetcher (the loader decodes data: itself)", async () => {
    const huge = `data:image/png;base64,${"A".repeat(4 * 1024 * 1024)}`;
    await assertRefused(fetcherFor({ maxBytes: 1024 }).fetch(huge), {
      message: /only http: and https:/,
    });
  });

  test("a redirect to another scheme is refused", async () => {
    const fetcher = fetcherFor({ allowCidrs: ALLOW_PUBLIC });
    const locations = [
      `file://${canary}`,
      `ftp://${PUBLIC_HOST}:${target.port}/`,
      `gopher://${PUBLIC_HOST}:${target.port}/_GET`,
      "data:image/png;base64,iVBORw0KGgo=",
      "javascript:alert(1)",
      `ws://${PUBLIC_HOST}:${target.port}/`,
    ];
    for (const location of locations) {
      const error = await assertRefused(fetcher.fetch(redirectTo(location)), {
        message: /redirects to the scheme/,
      });
      assert.ok(!error.message.includes(secret));
    }
    assert.equal(redirector.requests.length, locations.length);
    assertNothingReached([PUBLIC_HOST]);
  });
});

describe("credentials in the URL", () => {
  // The target's address is allowed here: only the credentials rule stands in the way.
  const allowTarget = { allowCidrs: [...ALLOW_PUBLIC, "127.0.0.1/32"] };

  test("user:pass@, user@ and :pass@ are refused without a connection", async () => {
    const lookup = resolver({ "images.example.test": "127.0.0.1" });
    const fetcher = fetcherFor({ ...allowTarget, lookup });
    for (const userinfo of ["user:pass", "user", ":pass", "user%40evil.test:p%3Ass", "a:b:c"]) {
      for (const host of ["127.0.0.1", "images.example.test"]) {
        await assertRefused(fetcher.fetch(`http://${userinfo}@${host}:${target.port}/x.png`), {
          message: /contains credentials/,
        });
      }
    }
    assert.deepEqual(lookup.calls, []);
    assertNoConnectionAttempted();
  });

  test("credentials in a redirect are refused, absolute or relative", async () => {
    const fetcher = fetcherFor(allowTarget);
    const locations = [
      `http://user:pass@127.0.0.1:${target.port}/x.png`,
      `http://user@127.0.0.1:${target.port}/x.png`,
      `//user:pass@127.0.0.1:${target.port}/x.png`,
      `https://user:pass@127.0.0.1:${target.port}/x.png`,
    ];
    for (const location of locations) {
      await assertRefused(fetcher.fetch(redirectTo(location)), {
        message: /redirects to a URL with credentials/,
      });
    }
    assert.equal(redirector.requests.length, locations.length);
    assertNothingReached([PUBLIC_HOST]);
  });

  test("control: the same URL without credentials reaches the target", async () => {
    const fetcher = fetcherFor(allowTarget);
    await fetcher.fetch(`http://127.0.0.1:${target.port}/x.png`);
    assert.equal(target.requests.length, 1);
  });
});

describe("through the HTTP API", () => {
  let hub: TestHub;
  let sim: OpenAISimulator;

  before(async () => {
    sim = await startOpenAISimulator();
    hub = await startTestHub({
      IMAGE_FETCH_ALLOW_CIDRS: `${PUBLIC_HOST}/32`,
      MAX_INPUT_IMAGE_BYTES: "2048",
      OPENAI_API_KEY: sim.apiKey,
      OPENAI_BASE_URL: sim.baseURL,
    });
  });

  after(async () => {
    await hub?.close();
    await sim?.close();
  });

  async function generate(
    body: Record<string, unknown>,
  ): Promise<{ status: number; body: unknown }> {
    const response = await fetch(`${hub.url}/api/images/generations`, {
      method: "POST",
      headers: { authorization: `Bearer ${hub.key}`, "content-type": "application/json" },
      body: JSON.stringify({ response_format: "b64_json", size: "16x16", ...body }),
    });
    return { status: response.status, body: await response.json() };
  }

  function openAIError(reply: { status: number; body: unknown }, status: number, code: string) {
    assert.equal(reply.status, status, JSON.stringify(reply.body));
    const error = (reply.body as { error?: Record<string, unknown> }).error;
    assert.ok(error, JSON.stringify(reply.body));
    assert.deepEqual(Object.keys(error).sort(), ["code", "message", "param", "type"]);
    assert.equal(error.code, code);
    assert.equal(error.type, "invalid_request_error");
    return error;
  }

  test("an image URL into loopback is a 400 in OpenAI shape, and the target sees nothing", async () => {
    for (const host of [
      "127.0.0.1",
      "localhost",
      "[::1]",
      "2130706433",
      "0x7f.1",
      "[::ffff:7f00:1]",
      "0",
    ]) {
      const url = `http://${host}:${target.port}/cat.png`;
      const error = openAIError(
        await generate({ model: "local/placeholder", prompt: "x", image: url }),
        400,
        "invalid_image_url",
      );
      assert.equal(error.param, "image", host);
      assert.match(String(error.message), /blocked address range \((loopback|unspecified)\)/);
      assert.doesNotMatch(String(error.message), /127\.0\.0\.1|::1/);
    }
    assert.equal(target.connections, 0);
  });

  test("a mask URL and the second of several images are refused under their own param", async () => {
    const mask = openAIError(
      await generate({
        model: "local/placeholder",
        prompt: "x",
        image: `data:image/png;base64,${png.toString("base64")}`,
        mask: `http://169.254.169.254:${target.port}/mask.png`,
      }),
      400,
      "invalid_image_url",
    );
    assert.equal(mask.param, "mask");
    const second = openAIError(
      await generate({
        model: "local/placeholder",
        prompt: "x",
        image: [png.toString("base64"), `http://[::1]:${target.port}/b.png`],
      }),
      400,
      "invalid_image_url",
    );
    assert.equal(second.param, "image[1]");
    assert.equal(target.connections, 0);
  });

  test("a redirect from an allowed host into loopback is refused, and the target sees nothing", async () => {
    for (const location of [
      `http://127.0.0.1:${target.port}/cat.png`,
      `http://[::1]:${target.port}/cat.png`,
      `http://localhost:${target.port}/cat.png`,
      `http://user:pass@${PUBLIC_HOST}:${target.port}/cat.png`,
      `file:///etc/passwd`,
    ]) {
      openAIError(
        await generate({ model: "local/placeholder", prompt: "x", image: redirectTo(location) }),
        400,
        "invalid_image_url",
      );
    }
    assert.equal(redirector.requests.length, 5);
    assert.equal(target.connections, 0);
  });

  test("control: an image at the allowed host is fetched through the API", async () => {
    const image = await startCountingServer(PUBLIC_HOST);
    const reply = await generate({
      model: "local/placeholder",
      prompt: "x",
      image: `http://${PUBLIC_HOST}:${image.port}/cat.png`,
    });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.equal(image.requests.length, 1);
  });

  test("a data: URL larger than MAX_INPUT_IMAGE_BYTES is a 413", async () => {
    const tooBig = Buffer.concat([png, randomBytes(2048)]);
    const error = openAIError(
      await generate({
        model: "local/placeholder",
        prompt: "x",
        image: `data:image/png;base64,${tooBig.toString("base64")}`,
      }),
      413,
      "payload_too_large",
    );
    assert.equal(error.param, "image");
    assert.match(String(error.message), /larger than 2048 bytes/);
  });

  test("file:, gopher: and credentials in a client URL are refused", async () => {
    for (const image of [
      "file:///etc/passwd",
      `gopher://${PUBLIC_HOST}:${target.port}/_GET`,
      `http://user:pass@${PUBLIC_HOST}:${target.port}/cat.png`,
      `http://[fe80::1%25eth0]:${target.port}/cat.png`,
    ]) {
      openAIError(
        await generate({ model: "local/placeholder", prompt: "x", image }),
        400,
        "invalid_image_url",
      );
    }
    assert.equal(target.connections, 0);
  });

  /** Makes the simulated provider answer with `url` instead of an image, then asks the hub. */
  async function generateWithProviderUrl(url: string) {
    sim.failNext({
      status: 200,
      body: { created: Math.floor(Date.now() / 1000), data: [{ url }] },
    });
    const response = await fetch(`${hub.url}/api/images/generations`, {
      method: "POST",
      headers: { authorization: `Bearer ${hub.key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "dall-e-2", prompt: "an owl", size: "256x256" }),
    });
    return { status: response.status, body: await response.json() };
  }

  test("a provider's image URL into loopback or metadata is not fetched", async () => {
    for (const url of [
      `http://127.0.0.1:${target.port}/internal.png`,
      `http://localhost:${target.port}/internal.png`,
      `http://169.254.169.254:${target.port}/latest/meta-data/`,
      redirectTo(`http://[::1]:${target.port}/internal.png`),
    ]) {
      const reply = await generateWithProviderUrl(url);
      assert.ok(reply.status >= 400, `${reply.status} ${JSON.stringify(reply.body)}`);
      assert.ok((reply.body as { error?: unknown }).error, JSON.stringify(reply.body));
    }
    assert.equal(target.connections, 0);
  });

  test("a provider's image URL into a blocked range is the provider's fault (502), not the client's", async () => {
    const reply = await generateWithProviderUrl(`http://127.0.0.1:${target.port}/internal.png`);
    assert.equal(reply.status, 502, JSON.stringify(reply.body));
    assert.equal(target.connections, 0);
  });
});
