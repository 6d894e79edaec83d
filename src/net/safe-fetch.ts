/**
 * The only way the hub fetches a URL a client gave it (input images for edits).
 *
 * A URL from a client is a request to make our server connect somewhere: to the cloud metadata
 * service, a database on the private network, an admin port on loopback. So:
 *
 * - only http: and https:, and no credentials in the URL;
 * - an IP written in the URL is judged by the address policy before any connection;
 * - a name is resolved by our own `lookup` inside the connection itself, and every address it
 *   resolves to is judged there. Checking first and connecting later would let a DNS answer
 *   change in between (DNS rebinding); judging the very answer the socket uses cannot be raced;
 * - redirects are followed by hand, each hop judged again like the first URL;
 * - a total time budget, a connect and a headers timeout, and a cap on the body's size, counted
 *   while it streams (a Content-Length can lie or be missing);
 * - nothing of ours is sent: no cookies, no authorization, only a User-Agent and an Accept.
 *
 * Messages never name the address a host resolved to: a client learning which internal
 * addresses exist is the leak SSRF guards are for. They may name the class of range.
 */

import type { LookupAddress, LookupOptions } from "node:dns";
import dns from "node:dns";
import net from "node:net";
import { Agent, type Dispatcher, request } from "undici";
import { HubError, invalidRequest, tooLarge } from "../errors.ts";
import { type AddressPolicy, createAddressPolicy } from "./address-policy.ts";
import { type Deadline, startDeadline } from "./deadline.ts";

export const DEFAULT_MAX_BYTES = 20 * 1024 * 1024;
export const DEFAULT_TIMEOUT_MS = 15_000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
export const DEFAULT_MAX_REDIRECTS = 5;
export const USER_AGENT = "image-hub/0.1";

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** Resolves a host name to all its addresses; `dns.lookup` unless a test injects another. */
export type ResolveHost = (hostname: string) => Promise<readonly LookupAddress[]>;

export interface SafeFetcherOptions {
  /** CIDRs allowed although the address policy refuses them (an internal image host). */
  allowCidrs?: readonly string[];
  /** Replaces `dns.lookup` (tests answer with the addresses they need). */
  lookup?: ResolveHost;
  /** Largest body accepted, in bytes. Default 20 MiB. */
  maxBytes?: number;
  /** Time budget of one fetch, redirects and body included. Default 15 s. */
  timeoutMs?: number;
  /** Time budget of one TCP (and TLS) connect. Default 5 s. */
  connectTimeoutMs?: number;
  /** Redirects followed at most. Default 5. */
  maxRedirects?: number;
}

export interface SafeFetchRequest {
  /** The request field the URL came from, for error messages: "image", "image[1]", "mask". */
  param?: string;
  /** Cancels the fetch; it then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** A tighter cap than the fetcher's own for this one fetch. */
  maxBytes?: number;
}

export interface FetchedResource {
  bytes: Buffer;
  /** The Content-Type the host sent; not trusted by anyone (images/inputs sniffs the bytes). */
  contentType: string | undefined;
  /** The URL after redirects. */
  finalUrl: string;
}

export interface SafeFetcher {
  fetch(url: string, request?: SafeFetchRequest): Promise<FetchedResource>;
  /** Closes the pooled connections. */
  close(): Promise<void>;
}

export type SafeFetchOptions = SafeFetcherOptions & SafeFetchRequest;

/**
 * Builds a fetcher with one keep-alive connection pool whose every new connection is judged by
 * the address policy. Make one per process (per policy) and close it on shutdown.
 *
 * @example
 * const fetcher = createSafeFetcher({ allowCidrs: [] });
 * const { bytes, contentType } = await fetcher.fetch("https://example.com/cat.png", {
 *   param: "image",
 *   signal,
 * });
 */
export function createSafeFetcher(options: SafeFetcherOptions = {}): SafeFetcher {
  const policy = createAddressPolicy({ allowCidrs: options.allowCidrs ?? [] });
  const resolve = options.lookup ?? resolveWithDns;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxRedirects = options.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
  const agent = new Agent({
    connect: {
      lookup: guardedLookup(resolve, policy),
      timeout: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });

  return {
    fetch: (url, request = {}) =>
      fetchGuarded(url, {
        agent,
        policy,
        maxBytes: Math.min(request.maxBytes ?? maxBytes, maxBytes),
        timeoutMs,
        maxRedirects,
        param: request.param ?? "image",
        signal: request.signal,
      }),
    close: () => agent.close(),
  };
}

/** One fetch with a fetcher of its own, closed afterwards. Prefer a shared `createSafeFetcher`. */
export async function safeFetch(url: string, options: SafeFetchOptions = {}) {
  const fetcher = createSafeFetcher(options);
  try {
    return await fetcher.fetch(url, options);
  } finally {
    await fetcher.close();
  }
}

/** Thrown inside the connection by our lookup; carries the range class, never the address. */
class BlockedAddressError extends Error {
  readonly reason: string;
  constructor(hostname: string, address: string, reason: string) {
    // The message is for logs (it is only ever a `cause`); clients see the HubError's.
    super(`${hostname} resolves to ${address}, in a blocked address range (${reason})`);
    this.name = "BlockedAddressError";
    this.reason = reason;
  }
}

interface FetchPlan {
  agent: Agent;
  policy: AddressPolicy;
  maxBytes: number;
  timeoutMs: number;
  maxRedirects: number;
  param: string;
  signal: AbortSignal | undefined;
}

async function fetchGuarded(url: string, plan: FetchPlan): Promise<FetchedResource> {
  plan.signal?.throwIfAborted();
  let current = checkUrl(url, plan);
  const deadline = startDeadline(plan.timeoutMs, plan.signal);
  const { signal } = deadline;
  try {
    for (let redirects = 0; ; redirects++) {
      // undici's own request(), not fetch(): the same agent and lookup, without the WHATWG
      // Response and web-stream layers around the body (a fifth of a small re-hosted reply's
      // cost on the way in).
      const response = await request(current, {
        dispatcher: plan.agent,
        method: "GET",
        signal,
        headers: {
          "user-agent": USER_AGENT,
          accept: "image/png, image/jpeg, image/webp, image/*;q=0.8",
        },
      });
      const { statusCode } = response;
      if (REDIRECT_STATUSES.has(statusCode)) {
        await discard(response.body);
        const location = headerOf(response.headers, "location");
        if (location === undefined) {
          throw fetchFailed(`The image URL answered ${statusCode} without a Location.`, plan);
        }
        if (redirects >= plan.maxRedirects) {
          throw fetchFailed(`The image URL redirected more than ${plan.maxRedirects} times.`, plan);
        }
        current = checkUrl(resolveLocation(location, current, plan), plan, true);
        continue;
      }
      if (statusCode < 200 || statusCode > 299) {
        await discard(response.body);
        throw fetchFailed(`Fetching the image URL failed: the host answered ${statusCode}.`, plan);
      }
      const bytes = await readCapped(response, plan);
      return {
        bytes,
        contentType: headerOf(response.headers, "content-type"),
        finalUrl: current.href,
      };
    }
  } catch (error) {
    throw failureOf(error, plan, deadline);
  } finally {
    deadline.dispose();
  }
}

/** Scheme, credentials and (for an IP written in the URL) the address policy. */
function checkUrl(input: string, plan: FetchPlan, isRedirect = false): URL {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw invalidUrl("The image URL is not a valid URL.", plan.param);
  }
  const subject = isRedirect ? "The image URL redirects to" : "The image URL";
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw invalidUrl(
      `${subject} ${isRedirect ? "" : "uses "}the scheme '${url.protocol}'; only http: and https: are fetched.`,
      plan.param,
    );
  }
  if (url.username !== "" || url.password !== "") {
    throw invalidUrl(
      `${subject} ${isRedirect ? "a URL with" : "contains"} credentials; they are refused.`,
      plan.param,
    );
  }
  // WHATWG parsing has already turned 2130706433, 0x7f.1 and 0177.0.0.1 into 127.0.0.1, and
  // keeps the brackets of an IPv6 host.
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  if (net.isIP(host) !== 0) {
    const verdict = plan.policy(host);
    if (!verdict.allowed) {
      throw invalidUrl(
        `${subject} ${isRedirect ? "" : "points to "}a blocked address range (${verdict.reason}).`,
        plan.param,
      );
    }
  }
  return url;
}

function resolveLocation(location: string, base: URL, plan: FetchPlan): string {
  try {
    return new URL(location, base).href;
  } catch {
    throw fetchFailed("The image URL redirected to an invalid URL.", plan);
  }
}

/**
 * Drops a body the hub will not read: a little of it is read so the connection can serve the
 * next request, the rest is cut (undici's dump); a broken connection is no error here.
 */
async function discard(body: Dispatcher.ResponseData["body"]): Promise<void> {
  await body.dump({ limit: 64 * 1024 }).catch(() => {});
}

/** A response header's single value (a repeated one counts as its first). */
function headerOf(
  headers: Record<string, string | string[] | undefined>,
  name: string,
): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Reads the body, refusing it past the cap: first by Content-Length, then by counting. */
async function readCapped(response: Dispatcher.ResponseData, plan: FetchPlan): Promise<Buffer> {
  const declared = Number(headerOf(response.headers, "content-length") ?? Number.NaN);
  if (Number.isFinite(declared) && declared > plan.maxBytes) {
    await discard(response.body);
    throw imageTooLarge(plan);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  let tooLarge = false;
  for await (const chunk of response.body as AsyncIterable<Buffer>) {
    total += chunk.byteLength;
    if (total > plan.maxBytes) {
      // Leaving the loop ends the stream and its connection: the rest is never read.
      tooLarge = true;
      break;
    }
    chunks.push(chunk);
  }
  if (tooLarge) throw imageTooLarge(plan);
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, total);
}

/** Turns whatever a fetch threw into the HubError a client may see. */
function failureOf(error: unknown, plan: FetchPlan, deadline: Deadline): unknown {
  if (error instanceof HubError) return error;
  if (plan.signal?.aborted) return plan.signal.reason;
  const blocked = findCause(error, (cause) => cause instanceof BlockedAddressError);
  if (blocked instanceof BlockedAddressError) {
    return new HubError(`The image URL resolves to a blocked address range (${blocked.reason}).`, {
      status: 400,
      type: "invalid_request_error",
      code: "invalid_image_url",
      param: plan.param,
      cause: error,
    });
  }
  const timedOut =
    deadline.timedOut ||
    findCause(error, (cause) => {
      const code = (cause as { code?: unknown }).code;
      return (
        code === "UND_ERR_CONNECT_TIMEOUT" ||
        code === "UND_ERR_HEADERS_TIMEOUT" ||
        code === "UND_ERR_BODY_TIMEOUT" ||
        code === "ETIMEDOUT"
      );
    }) !== undefined;
  if (timedOut) {
    return new HubError("Fetching the image URL timed out.", {
      status: 400,
      type: "invalid_request_error",
      code: "image_fetch_timeout",
      param: plan.param,
      retryable: true,
      cause: error,
    });
  }
  const dnsFailure = findCause(error, (cause) => {
    const code = (cause as { code?: unknown }).code;
    return code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "ENODATA";
  });
  const message = dnsFailure
    ? "Fetching the image URL failed: its host name could not be resolved."
    : "Fetching the image URL failed: the host could not be reached or broke off the transfer.";
  return fetchFailed(message, plan, "image_fetch_failed", error);
}

function findCause(error: unknown, test: (cause: object) => boolean): object | undefined {
  const seen = new Set<unknown>();
  const queue: unknown[] = [error];
  while (queue.length > 0) {
    const current = queue.shift();
    if (typeof current !== "object" || current === null || seen.has(current)) continue;
    seen.add(current);
    if (test(current)) return current;
    queue.push((current as { cause?: unknown }).cause);
    if (current instanceof AggregateError) queue.push(...current.errors);
  }
  return undefined;
}

/**
 * The `lookup` of every connection the agent opens: resolves all addresses of the name and
 * refuses the connection if any one of them is blocked (a name that mixes a public and a
 * private answer is an attack, not a configuration to be lenient with).
 */
function guardedLookup(resolve: ResolveHost, policy: AddressPolicy) {
  return (
    hostname: string,
    options: LookupOptions,
    callback: (
      error: NodeJS.ErrnoException | null,
      address: string | LookupAddress[],
      family?: number,
    ) => void,
  ): void => {
    resolve(hostname).then(
      (all) => {
        for (const { address } of all) {
          const verdict = policy(address);
          if (!verdict.allowed) {
            callback(new BlockedAddressError(hostname, address, verdict.reason ?? "blocked"), []);
            return;
          }
        }
        const wanted = options.family === 4 || options.family === 6 ? options.family : 0;
        const usable = wanted === 0 ? [...all] : all.filter((entry) => entry.family === wanted);
        const first = usable[0];
        if (first === undefined) {
          const error: NodeJS.ErrnoException = new Error(`${hostname} has no usable address`);
          error.code = "ENOTFOUND";
          callback(error, []);
        } else if (options.all) {
          callback(null, usable);
        } else {
          callback(null, first.address, first.family);
        }
      },
      (error: NodeJS.ErrnoException) => callback(error, []),
    );
  };
}

function resolveWithDns(hostname: string): Promise<LookupAddress[]> {
  return dns.promises.lookup(hostname, { all: true, order: "verbatim" });
}

function invalidUrl(message: string, param: string): HubError {
  return invalidRequest(message, param, "invalid_image_url");
}

function fetchFailed(
  message: string,
  plan: FetchPlan,
  code = "image_fetch_failed",
  cause?: unknown,
): HubError {
  return new HubError(message, {
    status: 400,
    type: "invalid_request_error",
    code,
    param: plan.param,
    cause,
  });
}

function imageTooLarge(plan: FetchPlan): HubError {
  return tooLarge(`The image at the URL is larger than ${plan.maxBytes} bytes.`, plan.param);
}
