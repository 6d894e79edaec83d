/**
 * The one way a provider talks HTTP to its upstream: time budget, cancellation, a bound on the
 * reply size, and the mapping of upstream failures to `HubError`s a client may see.
 *
 * The transport is undici's `request`, not `fetch`: the same client, keep-alive pool per origin,
 * but Node streams instead of WHATWG streams, which profiled as the largest cost left on a
 * 1.5 MB image reply (fetch's stream plumbing took about a fifth of the hub's CPU).
 */
import { type Dispatcher, request as undiciRequest } from "undici";
import {
  contentPolicy,
  HubError,
  upstreamFailed,
  upstreamRateLimited,
  upstreamTimeout,
  upstreamUnavailable,
} from "../errors.ts";
import { type ByteBudget, inByteScope } from "../net/byte-budget.ts";
import { type Deadline, startDeadline } from "../net/deadline.ts";
import { BytePieces } from "./byte-pieces.ts";

/** Replies larger than this are refused: ten 4K PNGs as base64 stay well below it. */
// Below V8's largest string (about 512 MiB), so a reply under the cap can always be decoded.
export const MAX_UPSTREAM_REPLY_BYTES = 256 * 1024 * 1024;
export const DEFAULT_UPSTREAM_TIMEOUT_MS = 180_000;
/** What a reply without a Content-Length takes from the byte budget: a large image's worth. */
const UNKNOWN_REPLY_SIZE = 4 * 1024 * 1024;

export interface UpstreamRequest {
  /** Provider name for messages: "OpenAI", "Google". */
  provider: string;
  /** The connection pool to use; undici's global one (keep-alive per origin) by default. */
  dispatcher?: Dispatcher;
  /** Where a successful reply takes its size before it is read (net/byte-budget.ts). */
  byteBudget?: ByteBudget;
  url: string;
  /** Largest reply read; MAX_UPSTREAM_REPLY_BYTES by default. */
  maxReplyBytes?: number;
  init: {
    method: "POST" | "GET" | "PUT";
    headers: Record<string, string>;
    body?: string | Buffer;
  };
  timeoutMs: number;
  signal: AbortSignal;
  /** Says whether an upstream 4xx body means a content-policy refusal. */
  isContentPolicy?: (status: number, upstreamError: UpstreamErrorBody) => boolean;
  /**
   * The upstream's words for an error body in a shape of its own (ComfyUI's `node_errors`),
   * used for the message where the common shapes say less; undefined to keep theirs.
   */
  describeError?: (text: string) => string | undefined;
}

export interface UpstreamErrorBody {
  message: string | undefined;
  code: string | undefined;
  type: string | undefined;
  param: string | undefined;
}

/** Sends the request and returns the parsed JSON reply of a 2xx, or throws a `HubError`. */
export async function requestUpstreamJson(request: UpstreamRequest): Promise<unknown> {
  return parseUpstreamJson(request, await requestUpstreamBytes(request));
}

/** Parses a 2xx reply's bytes as JSON; a body that is not JSON is a 502. */
export function parseUpstreamJson(
  request: Pick<UpstreamRequest, "provider">,
  bytes: Buffer | readonly Buffer[],
) {
  try {
    return JSON.parse(new BytePieces(bytes).joined().toString("utf8"));
  } catch (error) {
    throw upstreamFailed(`${request.provider} answered with a body that is not JSON.`, {
      code: "upstream_invalid_response",
      cause: error,
    });
  }
}

/** Sends the request and returns the raw body of a 2xx as one buffer, or throws a `HubError`. */
export async function requestUpstreamBytes(request: UpstreamRequest): Promise<Buffer> {
  return new BytePieces(await requestUpstreamPieces(request)).joined();
}

/**
 * Sends the request and returns the raw body of a 2xx in the chunks it arrived in, never joined
 * (for callers that read large replies without parsing or copying them; see json-cut.ts), or
 * throws a `HubError`.
 */
export async function requestUpstreamPieces(request: UpstreamRequest): Promise<Buffer[]> {
  request.signal.throwIfAborted();
  const deadline = startDeadline(request.timeoutMs, request.signal);
  try {
    return await requestWithin(request, deadline);
  } finally {
    deadline.dispose();
  }
}

async function requestWithin(request: UpstreamRequest, deadline: Deadline): Promise<Buffer[]> {
  const { signal } = deadline;
  let response: Dispatcher.ResponseData;
  try {
    response = await undiciRequest(request.url, {
      method: request.init.method,
      headers: request.init.headers,
      body: request.init.body,
      signal,
      dispatcher: request.dispatcher,
      // The hub bounds the whole call with `timeoutMs`; image models may think for minutes.
      headersTimeout: request.timeoutMs,
      bodyTimeout: request.timeoutMs,
    });
  } catch (error) {
    throw failureOf(request, error, deadline, "sending");
  }
  let pieces: Buffer[];
  let release: (() => void) | undefined;
  try {
    if (request.byteBudget && response.statusCode >= 200 && response.statusCode < 300) {
      const declared = Number(response.headers["content-length"]);
      release = await request.byteBudget.take(
        Number.isSafeInteger(declared) ? declared : UNKNOWN_REPLY_SIZE,
        signal,
      );
    }
    pieces = await readBoundedPieces(response, request.maxReplyBytes ?? MAX_UPSTREAM_REPLY_BYTES);
  } catch (error) {
    release?.();
    response.body.destroy();
    throw failureOf(request, error, deadline, "reading");
  } finally {
    // Without a scope (a provider used on its own) nobody else would give the hold back.
    if (!inByteScope()) release?.();
  }
  if (response.statusCode < 200 || response.statusCode >= 300) {
    throw errorFromUpstreamReply(
      request,
      { status: response.statusCode, headers: headersOf(response.headers) },
      Buffer.concat(pieces).toString("utf8"),
    );
  }
  return pieces;
}

function headersOf(raw: Dispatcher.ResponseData["headers"]): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    for (const item of [value].flat()) headers.append(name, item);
  }
  return headers;
}

/** Socket errors that mean no connection was made, so the upstream never saw the request. */
const NOT_CONNECTED = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_CONNECT_TIMEOUT",
]);

/**
 * What a transport failure tells the client, and the retry layer (images/retry.ts): only
 * `upstream_unreachable` is certain the upstream never saw the request. A connection lost after
 * the request went out may have left an image made and billed upstream.
 */
function failureOf(
  request: UpstreamRequest,
  error: unknown,
  deadline: Deadline,
  stage: "sending" | "reading",
): unknown {
  if (request.signal.aborted) return request.signal.reason;
  if (error instanceof HubError) return error;
  if (deadline.timedOut) {
    return upstreamTimeout(
      `${request.provider} did not answer within ${Math.round(request.timeoutMs / 1000)} s.`,
      error,
    );
  }
  if (stage === "sending" && errorCodes(error).some((code) => NOT_CONNECTED.has(code))) {
    return upstreamFailed(`Could not reach ${request.provider}.`, {
      code: "upstream_unreachable",
      retryable: true,
      cause: error,
    });
  }
  return upstreamFailed(`The connection to ${request.provider} was lost before its reply ended.`, {
    code: "upstream_connection_lost",
    retryable: true,
    cause: error,
  });
}

/** The `code`s along an error's cause chain (undici wraps socket errors). */
function errorCodes(error: unknown): string[] {
  const codes: string[] = [];
  for (let at = error, depth = 0; at && typeof at === "object" && depth < 5; depth++) {
    const code = (at as { code?: unknown }).code;
    if (typeof code === "string") codes.push(code);
    for (const inner of (at as { errors?: unknown[] }).errors ?? [])
      codes.push(...errorCodes(inner));
    at = (at as { cause?: unknown }).cause;
  }
  return codes;
}

/**
 * Reads the body, at most `maxBytes`, as the chunks it arrived in: joining a 2 MB reply into one
 * buffer costs an allocation and a copy that profiled above a millisecond per request.
 */
async function readBoundedPieces(
  response: Dispatcher.ResponseData,
  maxBytes: number,
): Promise<Buffer[]> {
  const declared = Number(response.headers["content-length"] ?? Number.NaN);
  if (declared > maxBytes) {
    response.body.destroy();
    throw upstreamFailed("The upstream reply is larger than the hub accepts.", {
      code: "upstream_reply_too_large",
    });
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of response.body as AsyncIterable<Buffer>) {
    if (total + chunk.byteLength > maxBytes) {
      response.body.destroy();
      throw upstreamFailed("The upstream reply is larger than the hub accepts.", {
        code: "upstream_reply_too_large",
      });
    }
    chunks.push(chunk);
    total += chunk.byteLength;
  }
  return chunks;
}

/**
 * Upstream messages reach clients and logs, and some repeat what the hub sent: OpenAI's 401
 * names a masked key, a proxy may echo a whole one or name the address it could not reach, a
 * 429 names the operator's organization. The hub's own credentials are cut out exactly, and
 * anything shaped like a key, a URL, an IP address or an organization id as well.
 */
export function redactSecrets(message: string, secrets: readonly string[] = []): string {
  let safe = message;
  for (const secret of secrets) {
    if (secret.length >= 8) safe = safe.split(secret).join("[redacted]");
  }
  return safe
    .replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>)]+/gi, "[url]")
    .replace(/\[[0-9a-f:.]*:[0-9a-f:.]*\](?::\d+)?/gi, "[address]")
    .replace(/\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b/g, "[address]")
    .replace(/\b(?:sk|rk|pk)-[\w*.-]{6,}/g, "[redacted key]")
    .replace(/\bAIza[\w-]{20,}/g, "[redacted key]")
    .replace(/\borg-[A-Za-z0-9]{6,}/g, "org-[redacted]");
}

/**
 * The credentials a request carried, to cut out of what the upstream says: whatever travels in
 * a header named for auth, a key or a token (`Authorization`, `x-goog-api-key`, Azure's
 * `api-key`, an OpenAI-compatible server's own header), with its scheme and without.
 */
export function credentialsOf(headers: Record<string, string> | undefined): string[] {
  if (!headers) return [];
  const values: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (!/auth|key|token|secret/i.test(name) || !value) continue;
    values.push(value);
    const credential = value.replace(/^(?:Bearer|Basic|Token)\s+/i, "");
    if (credential !== value) values.push(credential);
    // Basic auth's user:pass, as a server might echo the user or the password.
    if (/^Basic\s+/i.test(value)) {
      const decoded = Buffer.from(credential, "base64").toString("utf8");
      values.push(decoded, ...decoded.split(":"));
    }
  }
  return values;
}

/**
 * An upstream error body, whichever shape its vendor uses: OpenAI's and Google's
 * `{"error":{message,code,type,param}}`, a flat `{"error":"…","code"}` (xAI), FastAPI's
 * `{"detail":"…"}` or `{"detail":[{loc,msg}]}` (AUTOMATIC1111), `{"name","errors":[…]}`
 * (Stability), or a bare `{"message"}`.
 */
export function parseUpstreamError(text: string): UpstreamErrorBody {
  const none = { message: undefined, code: undefined, type: undefined, param: undefined };
  let body: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(text);
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return none;
    body = parsed as Record<string, unknown>;
  } catch {
    // Not JSON: an HTML page from a proxy, say. Its text is not shown to clients.
    return none;
  }
  const error = body.error;
  if (error && typeof error === "object") {
    const nested = error as Record<string, unknown>;
    return {
      message: typeof nested.message === "string" ? nested.message : undefined,
      code: stringOf(nested.code) ?? stringOf(nested.status),
      type: stringOf(nested.type),
      param: stringOf(nested.param),
    };
  }
  return {
    message:
      (typeof error === "string" ? error : undefined) ??
      detailOf(body.detail) ??
      listOf(body.errors) ??
      (typeof body.message === "string" ? body.message : undefined),
    code: stringOf(body.code) ?? stringOf(body.name),
    type: stringOf(body.type),
    param: undefined,
  };
}

/** FastAPI's `detail`: a message, or validation errors `[{loc: [...], msg}]`. */
function detailOf(detail: unknown): string | undefined {
  if (typeof detail === "string") return detail;
  if (!Array.isArray(detail)) return undefined;
  const parts = detail.flatMap((item) => {
    if (!item || typeof item !== "object") return [];
    const { loc, msg } = item as { loc?: unknown; msg?: unknown };
    if (typeof msg !== "string") return [];
    return [Array.isArray(loc) ? `${loc.join(".")}: ${msg}` : msg];
  });
  return parts.length > 0 ? parts.join("; ") : undefined;
}

function listOf(errors: unknown): string | undefined {
  if (!Array.isArray(errors)) return undefined;
  const messages = errors.filter((item): item is string => typeof item === "string");
  return messages.length > 0 ? messages.join("; ") : undefined;
}

function stringOf(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "number") return String(value);
  return undefined;
}

/** Parses `Retry-After` in seconds or as an HTTP date; undefined when absent or unusable. */
export function retryAfterSeconds(headers: Headers, now = Date.now()): number | undefined {
  const value = headers.get("retry-after");
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.ceil(seconds);
  const date = Date.parse(value);
  if (Number.isFinite(date)) return Math.max(0, Math.ceil((date - now) / 1000));
  return undefined;
}

/**
 * Maps an upstream error reply. What the client may see: the upstream's own message for a
 * request it rejected (4xx other than auth), since it explains what to change; never the
 * message of an authentication failure, which is about the hub's credentials, not the client's.
 */
export function errorFromUpstreamReply(
  request: Pick<UpstreamRequest, "provider" | "isContentPolicy" | "describeError"> & {
    init?: Pick<UpstreamRequest["init"], "headers">;
  },
  response: { status: number; headers: Headers },
  text: string,
): HubError {
  const status = response.status;
  const common = parseUpstreamError(text);
  const parsed = { ...common, message: request.describeError?.(text) ?? common.message };
  const upstream = {
    ...parsed,
    message: parsed.message && redactSecrets(parsed.message, credentialsOf(request.init?.headers)),
  };
  const detail = upstream.message ? `: ${upstream.message}` : ".";
  const cause = { status, upstream };
  if (status === 401 || status === 403) {
    return upstreamFailed(`${request.provider} refused the hub's credentials.`, {
      code: "upstream_auth_failed",
      upstreamStatus: status,
      cause,
    });
  }
  if (status === 429) {
    return upstreamRateLimited(
      `${request.provider} is rate limiting the hub${detail}`,
      retryAfterSeconds(response.headers),
      cause,
    );
  }
  if (status >= 400 && status < 500) {
    if (request.isContentPolicy?.(status, upstream)) {
      return contentPolicy(
        upstream.message ?? `${request.provider} refused the request under its content policy.`,
        cause,
      );
    }
    if (status === 404) {
      return upstreamFailed(`${request.provider} does not know the model${detail}`, {
        code: "upstream_model_not_found",
        cause,
      });
    }
    return new HubError(`${request.provider} rejected the request${detail}`, {
      status: status === 413 ? 413 : 400,
      type: "invalid_request_error",
      code: upstream.code ?? "upstream_rejected",
      param: upstream.param ?? null,
      cause,
    });
  }
  if (status === 503) {
    return upstreamUnavailable(
      `${request.provider} is unavailable${detail}`,
      retryAfterSeconds(response.headers),
      cause,
    );
  }
  if (status === 504) {
    return upstreamTimeout(`${request.provider} timed out${detail}`, cause);
  }
  return upstreamFailed(`${request.provider} failed with status ${status}${detail}`, {
    code: "upstream_error",
    retryable: status >= 500,
    retryAfterSeconds: retryAfterSeconds(response.headers),
    upstreamStatus: status,
    cause,
  });
}
