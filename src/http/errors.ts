/**
 * The one error handler: every failure leaves in the OpenAI shape
 * `{"error":{"message","type","param","code"}}` with the right status. A 5xx of ours says
 * nothing of its cause; the cause goes to the log.
 */
import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { HubError, internalError, invalidRequest, tooLarge } from "../errors.ts";

interface SchemaError {
  instancePath?: string;
  /** Set on the errors of `propertyNames`: the name that is not allowed. */
  propertyName?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
}

/** Messages and codes for schema rules whose generic wording would not help a client. */
const FRIENDLY: Record<string, { message: (params: SchemaParams) => string; code?: string }> = {
  "size:pattern": { message: () => "must be WIDTHxHEIGHT such as 1024x1024, or auto" },
  "prompt:maxLength": {
    message: (params) => `must be at most ${String(params.limit)} characters`,
    code: "string_above_max_length",
  },
  "image:maxItems": {
    message: (params) => `at most ${String(params.limit)} input images are accepted`,
    code: "too_many_images",
  },
};

type SchemaParams = Record<string, unknown>;

const MAX_NAME_SHOWN = 100;

/** Turns schema validation errors (ajv) into one 400 naming the parameter, as OpenAI does. */
export function validationError(errors: readonly SchemaError[], part = "body"): HubError {
  const unknown = errors.find((error) => error.propertyName !== undefined)?.propertyName;
  if (unknown !== undefined) {
    // A name is as long as the client made it; no parameter is longer than this.
    const name = unknown.length > MAX_NAME_SHOWN ? `${unknown.slice(0, MAX_NAME_SHOWN)}…` : unknown;
    return invalidRequest(`Unknown parameter: '${name}'.`, name, "unknown_parameter");
  }
  const first = primaryError(errors);
  const missing = first?.params?.missingProperty;
  const pathParam = (first?.instancePath ?? "")
    .split("/")
    .filter(Boolean)
    .map((segment, index) => (index === 0 ? segment : `[${segment}]`))
    .join("");
  const param = typeof missing === "string" ? missing : pathParam || null;
  if (typeof missing === "string") {
    return invalidRequest(
      `Missing required parameter: '${missing}'.`,
      missing,
      "missing_required_parameter",
    );
  }
  const name = param ?? part;
  const friendly = FRIENDLY[`${name}:${first?.keyword}`];
  const allowed = errors
    .filter((error) => error.instancePath === first?.instancePath && error.keyword === "const")
    .map((error) => String(error.params?.allowedValue));
  const detail =
    allowed.length > 0
      ? `must be one of ${allowed.join(", ")}`
      : (friendly?.message(first?.params ?? {}) ??
        unionTypeMessage(errors, first) ??
        first?.message ??
        "is not valid");
  return invalidRequest(`Invalid '${name}': ${detail}.`, param, friendly?.code ?? "invalid_value");
}

/**
 * The error that says what is wrong. For a union (`image`: a string or an array) ajv reports
 * every branch; the branch whose type matched tells the real fault (too many items), not the
 * branch of another type ("must be string").
 */
function primaryError(errors: readonly SchemaError[]): SchemaError | undefined {
  const union = errors.find((error) => error.keyword === "anyOf");
  const branches = errors.filter((error) => error.keyword !== "anyOf");
  if (!union) return branches[0] ?? errors[0];
  const otherType = (error: SchemaError) =>
    error.keyword === "type" && error.instancePath === union.instancePath;
  return branches.find((error) => !otherType(error)) ?? branches[0] ?? union;
}

/** "must be string or array" when a value matches no branch of a union by its type. */
function unionTypeMessage(
  errors: readonly SchemaError[],
  first: SchemaError | undefined,
): string | undefined {
  if (first?.keyword !== "type") return undefined;
  const types = errors
    .filter((error) => error.keyword === "type" && error.instancePath === first.instancePath)
    .map((error) => String(error.params?.type));
  return types.length > 1 ? `must be ${[...new Set(types)].join(" or ")}` : undefined;
}

/** 413 for a body over MAX_BODY_BYTES (the route's limit), JSON or multipart alike. */
export function bodyTooLarge(limit?: number): HubError {
  return tooLarge(
    `The request body is larger than this hub accepts${limit ? ` (${limit} bytes)` : ""}.`,
    null,
  );
}

/**
 * Any error as the HubError a client sees. `bodyLimit` (the route's, in bytes) is named in the
 * 413 of a body over it.
 */
export function toHubError(error: FastifyError | Error, bodyLimit?: number): HubError {
  if (error instanceof HubError) return error;
  const fastifyError = error as FastifyError & { validation?: SchemaError[] };
  if (fastifyError.validation) {
    return validationError(fastifyError.validation, fastifyError.validationContext);
  }
  switch (fastifyError.code) {
    // The client went away mid-request: nothing to answer, and no fault of ours to log loudly.
    case "ERR_STREAM_PREMATURE_CLOSE":
    case "ECONNRESET":
      return new HubError("The client closed the connection before the reply.", {
        status: 499,
        type: "invalid_request_error",
        code: "client_disconnected",
        cause: error,
      });
    case "FST_ERR_CTP_INVALID_JSON_BODY":
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return invalidRequest(
        "We could not parse the JSON body of your request. Send valid JSON with Content-Type: application/json.",
        null,
        "invalid_json",
      );
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return bodyTooLarge(bodyLimit);
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new HubError(
        "Unsupported Content-Type: send application/json (or multipart/form-data for edits).",
        { status: 415, type: "invalid_request_error", code: "unsupported_media_type" },
      );
  }
  // Errors of Fastify and its plugins (multipart limits, malformed bodies) carry a 4xx and a
  // message written for clients; anything else is ours and is not shown.
  const status = fastifyError.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    return new HubError(error.message, {
      status,
      type: "invalid_request_error",
      code: status === 413 ? "payload_too_large" : "invalid_request",
    });
  }
  return internalError(error);
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const hubError = toHubError(error, request.routeOptions.bodyLimit);
    if (hubError.status >= 500) {
      request.log.error({ err: error }, "request failed");
    } else {
      request.log.info({ code: hubError.code, status: hubError.status }, hubError.message);
    }
    if (hubError.retryAfterSeconds !== undefined) {
      reply.header("retry-after", String(hubError.retryAfterSeconds));
    }
    return reply.status(hubError.status).send(hubError.toJSON());
  });

  app.setNotFoundHandler((request, reply) => {
    const error = new HubError(
      `Unknown request URL: ${request.method} ${request.url.split("?")[0]}.`,
      {
        status: 404,
        type: "invalid_request_error",
        code: "unknown_url",
      },
    );
    return reply.status(404).send(error.toJSON());
  });
}

/**
 * Fastify's `clientErrorHandler`: a request Node cannot parse as HTTP (bytes after a body shorter
 * than its Content-Length, a header over the size limit, a request not received in time) gets
 * its reply in the OpenAI shape too, written on the socket, which is then closed, as Fastify's
 * default handler does.
 */
export function handleClientError(error: Error & { code?: string }, socket: Socket): void {
  // A reset connection has nobody to answer.
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  const hubError = clientErrorOf(error.code);
  if (socket.writable) {
    const body = JSON.stringify(hubError.toJSON());
    const { status } = hubError;
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `Content-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}

function clientErrorOf(code: string | undefined): HubError {
  const error = (status: number, message: string, errorCode: string) =>
    new HubError(message, { status, type: "invalid_request_error", code: errorCode });
  switch (code) {
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return error(408, "The request was not received in time.", "request_timeout");
    case "HPE_HEADER_OVERFLOW":
      return error(
        431,
        "The request headers are larger than this hub accepts.",
        "headers_too_large",
      );
    default:
      return error(
        400,
        "The request is not valid HTTP/1.1: check its request line, headers and Content-Length.",
        "invalid_http",
      );
  }
}
