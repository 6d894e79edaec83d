/**
 * The one error type of the hub. Every failure a client can see is a `HubError`, and one error
 * handler (src/http/errors.ts) turns it into the OpenAI shape
 * `{"error":{"message","type","param","code"}}`.
 *
 * `message` must be safe to show a client: no keys, no internal addresses, no image bytes.
 * Whatever is not safe goes into `cause`, which is logged but never sent.
 */
export type OpenAIErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "rate_limit_error"
  | "insufficient_quota"
  | "server_error";

export interface HubErrorOptions {
  status: number;
  type: OpenAIErrorType;
  code: string;
  param?: string | null;
  /** Whether the same request may succeed if sent again (used by fan-out and, later, retries). */
  retryable?: boolean;
  /** Seconds a client should wait before retrying, sent as `Retry-After`. */
  retryAfterSeconds?: number;
  /** The upstream's HTTP status, when the error is its answer (credential health reads it). */
  upstreamStatus?: number;
  cause?: unknown;
}

export class HubError extends Error {
  readonly status: number;
  readonly type: OpenAIErrorType;
  readonly code: string;
  readonly param: string | null;
  readonly retryable: boolean;
  readonly retryAfterSeconds: number | undefined;
  readonly upstreamStatus: number | undefined;

  constructor(message: string, options: HubErrorOptions) {
    super(message, { cause: options.cause });
    this.name = "HubError";
    this.status = options.status;
    this.type = options.type;
    this.code = options.code;
    this.param = options.param ?? null;
    this.retryable = options.retryable ?? false;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.upstreamStatus = options.upstreamStatus;
  }

  toJSON(): { error: { message: string; type: string; param: string | null; code: string } } {
    return {
      error: { message: this.message, type: this.type, param: this.param, code: this.code },
    };
  }
}

/** 400: the request cannot be served as sent. */
export function invalidRequest(message: string, param: string | null, code = "invalid_value") {
  return new HubError(message, { status: 400, type: "invalid_request_error", code, param });
}

/** 401: no key, or a key we do not know. */
export function unauthorized(
  message = "Invalid or missing API key. Send it as 'Authorization: Bearer <key>'.",
) {
  return new HubError(message, {
    status: 401,
    type: "authentication_error",
    code: "invalid_api_key",
  });
}

/** 403: a known key that may not do this. */
export function forbidden(message: string, code = "permission_denied") {
  return new HubError(message, { status: 403, type: "permission_error", code });
}

/** 404 for an unknown model, as OpenAI answers it. */
export function modelNotFound(model: string, reason = "does not exist on this hub") {
  return new HubError(`The model '${model}' ${reason}. GET /api/models lists the models.`, {
    status: 404,
    type: "invalid_request_error",
    code: "model_not_found",
    param: "model",
  });
}

/** 402: the key's credit cannot cover the most this request may cost. */
export function insufficientQuota(message: string) {
  return new HubError(message, {
    status: 402,
    type: "insufficient_quota",
    code: "insufficient_quota",
  });
}

/**
 * 400: the hub has no price for what a key with a balance asked for (an admin deleted the row),
 * so it cannot reserve or charge it. A 4xx, not a 5xx: the OpenAI SDK retries 5xx, and sending
 * the same request again cannot help until an admin sets a price; another size, quality or
 * model may be priced.
 */
export function modelNotPriced(model: string, size: string | undefined, quality?: string) {
  const at = `size ${size ?? "auto"}${quality === undefined ? "" : ` and quality ${quality}`}`;
  return new HubError(
    `The model '${model}' has no price on this hub at ${at}, so a key with a credit balance ` +
      "cannot be charged for it. The hub's admin must set one (PUT /api/admin/prices/image); " +
      "GET /api/models shows what is priced.",
    { status: 400, type: "invalid_request_error", code: "model_not_priced", param: "model" },
  );
}

/** 400 for an admin's price that could never apply: a size, quality or billing kind the model lacks. */
export function priceNotApplicable(message: string, param: string) {
  return new HubError(message, {
    status: 400,
    type: "invalid_request_error",
    code: "price_not_applicable",
    param,
  });
}

/** 413: an input larger than we accept. */
export function tooLarge(message: string, param: string | null) {
  return new HubError(message, {
    status: 413,
    type: "invalid_request_error",
    code: "payload_too_large",
    param,
  });
}

/** 400 content_policy_violation: the provider refused the prompt or the image. */
export function contentPolicy(message: string, cause?: unknown) {
  return new HubError(message, {
    status: 400,
    type: "invalid_request_error",
    code: "content_policy_violation",
    param: "prompt",
    cause,
  });
}

/** 502: the upstream failed or answered something we cannot use. */
export function upstreamFailed(
  message: string,
  options: {
    retryable?: boolean;
    code?: string;
    cause?: unknown;
    retryAfterSeconds?: number;
    upstreamStatus?: number;
  } = {},
) {
  return new HubError(message, {
    status: 502,
    type: "server_error",
    code: options.code ?? "upstream_error",
    retryable: options.retryable ?? false,
    retryAfterSeconds: options.retryAfterSeconds,
    upstreamStatus: options.upstreamStatus,
    cause: options.cause,
  });
}

/** 503 from a provider (overloaded, in maintenance): passed on with its Retry-After. */
export function upstreamUnavailable(message: string, retryAfterSeconds?: number, cause?: unknown) {
  return new HubError(message, {
    status: 503,
    type: "server_error",
    code: "upstream_unavailable",
    retryable: true,
    retryAfterSeconds,
    upstreamStatus: 503,
    cause,
  });
}

/** 504: the upstream did not answer in time. */
export function upstreamTimeout(message: string, cause?: unknown) {
  return new HubError(message, {
    status: 504,
    type: "server_error",
    code: "upstream_timeout",
    retryable: true,
    cause,
  });
}

/**
 * 429 from a provider (its rate limit or its quota), passed on to the client. Its own code, so
 * the ledger tells a provider's limit from the key's own (`rate_limit_exceeded`).
 */
export function upstreamRateLimited(message: string, retryAfterSeconds?: number, cause?: unknown) {
  return new HubError(message, {
    status: 429,
    type: "rate_limit_error",
    code: "upstream_rate_limited",
    retryable: true,
    retryAfterSeconds,
    upstreamStatus: 429,
    cause,
  });
}

/** 500: a fault of ours. The message a client sees never says more than this. */
export function internalError(cause?: unknown) {
  return new HubError("The server had an error while processing your request.", {
    status: 500,
    type: "server_error",
    code: "internal_error",
    cause,
  });
}

export function isHubError(value: unknown): value is HubError {
  return value instanceof HubError;
}
