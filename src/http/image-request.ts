/**
 * One image request from a route to its reply, whatever the route's shape (OpenAI's or
 * AIGNE's): who calls and from which app, whether it is idempotent, the generation in a byte
 * scope, and the reply written as bytes.
 *
 * Idempotent: a request with an `Idempotency-Key` header, or on a route that derives one (AIGNE's
 * client retries after a timeout without sending any). Such a request keeps running when its
 * client goes away, since its answer is what the retry will get; any other request is cancelled
 * (its upstream calls aborted, nothing charged) as before. A cut by the shutdown cancels both.
 */

import type { FastifyReply, FastifyRequest } from "fastify";
import { Type } from "typebox";
import { formatUsd } from "../billing/money.ts";
import { HubError, invalidRequest, isHubError } from "../errors.ts";
import type { GenerationResult, ImageService } from "../images/generate.ts";
import type { ImageJobRequest } from "../images/plan.ts";
import { runInByteScope } from "../net/byte-budget.ts";
import { principalOf } from "./auth.ts";
import { wasCut } from "./graceful-close.ts";
import {
  fingerprintOf,
  fromPieces,
  type IdempotencyLedger,
  type PreparedReply,
  type ReplyToSend,
} from "./idempotency.ts";
import { PiecesStream } from "./pieces-stream.ts";
import { noteImageSummary } from "./request-log.ts";

/** Header an application names itself in; AIGNE's client sends its DID there. */
export const APP_HEADER = "x-aigne-hub-client-did";
const MAX_APP_LENGTH = 256;
const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

/** The request headers every image route reads, for the document (checked in the handler). */
export const ImageRequestHeaders = Type.Object({
  "idempotency-key": Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: MAX_IDEMPOTENCY_KEY_LENGTH,
      description:
        "Makes the request safe to retry: the same key and body within IDEMPOTENCY_TTL_SECONDS get the first answer and are not charged again; a retry while the first runs waits for it. The same key with another body is a 409 `idempotency_key_reused`.",
    }),
  ),
  [APP_HEADER]: Type.Optional(
    Type.String({
      maxLength: MAX_APP_LENGTH,
      description: "The calling application, recorded in the usage ledger (`app`).",
    }),
  ),
});

/** The reply headers idempotent requests add, for the document. */
export const IdempotencyReplyHeaders = {
  "X-Image-Hub-Idempotency": Type.String({
    description:
      "`key` (Idempotency-Key sent) or `derived` (AIGNE route), then `first`, `joined` (waited for the same request running) or `replayed` (a kept answer, not charged again).",
  }),
  "Idempotent-Replayed": Type.String({
    description: "`true` when the answer is another request's: nothing was charged for this one.",
  }),
};

export interface ImageRequestDeps {
  images: ImageService;
  idempotency: IdempotencyLedger;
  /** How long an answer is kept for a request with an Idempotency-Key, ms. */
  idempotencyKeepMs: number;
}

export interface ImageRequestOptions {
  /** What the generation is asked. */
  body: ImageJobRequest;
  /** What identifies the request for idempotency: the body as the client sent it. */
  sent: unknown;
  /** Shapes the reply of a generation. */
  prepare(result: GenerationResult): PreparedReply;
  /** Derive an idempotency key from the key and body when none is sent, kept this long, ms. */
  deriveKeepMs?: number;
}

export async function answerImageRequest(
  deps: ImageRequestDeps,
  request: FastifyRequest,
  reply: FastifyReply,
  options: ImageRequestOptions,
): Promise<FastifyReply> {
  const app = appOf(request);
  const principal = principalOf(request);
  const generate = async (keepOnDisconnect: boolean) => {
    const signal = abortOnDisconnect(request, reply, keepOnDisconnect);
    const { result, release } = runInByteScope(() =>
      deps.images.generate(principal, options.body, signal, {
        app,
        summary: (fields) => noteImageSummary(request, reply, fields),
      }),
    );
    // The bytes count until the reply is written or the client gone, and the work is done.
    const closed = new Promise((resolve) => reply.raw.once("close", resolve));
    Promise.allSettled([result, closed]).then(release);
    return options.prepare(await result);
  };

  const sentKey = idempotencyKeyOf(request);
  if (sentKey === undefined && options.deriveKeepMs === undefined) {
    return send(reply, fromPieces(await generate(false)));
  }
  // /api/… and /v1/… are one endpoint: a retry may come by either.
  const route = (request.routeOptions.url ?? request.url).replace(/^\/(?:api|v1)\//, "/");
  const print = fingerprintOf(route, options.sent);
  const claim =
    sentKey !== undefined
      ? { scope: `${principal.keyId}\0key\0${sentKey}`, keepMs: deps.idempotencyKeepMs }
      : { scope: `${principal.keyId}\0derived\0${print}`, keepMs: options.deriveKeepMs ?? 0 };
  const { reply: toSend, outcome } = await deps.idempotency
    .run({ ...claim, fingerprint: print }, () => generate(true))
    .catch((error: unknown) => {
      // The openai SDK retries a 409 unless told not to; the same key and body would only
      // conflict again.
      if (isHubError(error) && error.code === "idempotency_key_reused") {
        reply.header("x-should-retry", "false");
      }
      throw error;
    });
  reply.header(
    "x-image-hub-idempotency",
    `${sentKey !== undefined ? "key" : "derived"}; ${outcome}`,
  );
  if (outcome !== "first") reply.header("idempotent-replayed", "true");
  return send(reply, toSend);
}

/** The calling application's name, from APP_HEADER; null when the client gave none. */
function appOf(request: FastifyRequest): string | null {
  const value = request.headers[APP_HEADER];
  if (typeof value !== "string" || value.trim() === "") return null;
  if (value.length > MAX_APP_LENGTH) {
    throw invalidRequest(
      `The ${APP_HEADER} header is longer than ${MAX_APP_LENGTH} characters.`,
      APP_HEADER,
      "invalid_header",
    );
  }
  return value.trim();
}

function idempotencyKeyOf(request: FastifyRequest): string | undefined {
  const value = request.headers["idempotency-key"];
  if (value === undefined) return undefined;
  if (
    typeof value !== "string" ||
    value.length < 1 ||
    value.length > MAX_IDEMPOTENCY_KEY_LENGTH ||
    !/^[\x21-\x7e]+$/.test(value)
  ) {
    throw invalidRequest(
      `Idempotency-Key must be 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII characters, sent once.`,
      "Idempotency-Key",
      "invalid_idempotency_key",
    );
  }
  return value;
}

/**
 * An AbortSignal that fires when the client goes away before the reply is sent, unless the
 * request is kept for a retry; a cut by the shutdown fires it either way.
 */
function abortOnDisconnect(
  request: FastifyRequest,
  reply: FastifyReply,
  keepOnDisconnect: boolean,
): AbortSignal {
  const controller = new AbortController();
  reply.raw.once("close", () => {
    if (reply.raw.writableFinished) return;
    if (wasCut(request.server.server)) {
      request.log.warn("cut by the shutdown; cancelling the upstream calls");
      controller.abort(
        new HubError("The hub shut down before the reply.", {
          status: 503,
          type: "server_error",
          code: "server_shutting_down",
        }),
      );
      return;
    }
    if (keepOnDisconnect) {
      request.log.info("client disconnected; the request runs on for its retry");
      return;
    }
    request.log.info("client disconnected; cancelling the upstream calls");
    controller.abort(
      new HubError("The client closed the connection before the reply.", {
        // 499: nginx's "client closed request"; nobody reads it, but it keeps logs honest.
        status: 499,
        type: "invalid_request_error",
        code: "client_disconnected",
      }),
    );
  });
  return controller.signal;
}

/** The headers every image reply carries, from its generation. */
function resultHeaders(
  result: GenerationResult,
  moreWarnings: readonly string[] = [],
): Record<string, string> {
  const headers: Record<string, string> = {
    "x-image-hub-model": result.job.model.id,
    // The usage record's id: a client (or an audit) can match every reply to its ledger row.
    "x-image-hub-record-id": result.recordId,
    // What the key was charged for this reply, as the ledger row says (USD, six places).
    "x-image-hub-cost": formatUsd(result.costMicros),
  };
  const warnings = [...result.warnings, ...moreWarnings];
  if (warnings.length > 0) headers["x-image-hub-warnings"] = headerSafe(warnings.join(" | "));
  if (result.partial) {
    const { requested, delivered, errorCode } = result.partial;
    headers["x-image-hub-partial"] =
      `requested=${requested}; delivered=${delivered}; error=${errorCode}`;
  }
  return headers;
}

/** A JSON reply of pieces with the result's headers; `moreWarnings` are the route's own. */
export function jsonReply(
  result: GenerationResult,
  pieces: Buffer[],
  moreWarnings: readonly string[] = [],
): PreparedReply {
  return {
    status: 200,
    headers: {
      ...resultHeaders(result, moreWarnings),
      "content-type": "application/json; charset=utf-8",
    },
    pieces,
  };
}

/** Pieces up to this size are sent as one buffer; a copy costs less than a stream for them. */
const JOIN_PIECES_BELOW_BYTES = 64 * 1024;

function send(reply: FastifyReply, toSend: ReplyToSend): FastifyReply {
  const body = !Array.isArray(toSend.body)
    ? toSend.body
    : toSend.length < JOIN_PIECES_BELOW_BYTES
      ? Buffer.concat(toSend.body, toSend.length)
      : // Megabytes of base64 are written as the slices they are, never joined into a copy.
        new PiecesStream(toSend.body);
  return reply
    .code(toSend.status)
    .headers(toSend.headers)
    .header("content-length", String(toSend.length))
    .send(body);
}

/** Header values must be visible ASCII; warnings may quote an upstream's words in any script. */
function headerSafe(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, "?").slice(0, 2000);
}
