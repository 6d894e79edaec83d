/**
 * The one error handler: every failure leaves in the OpenAI shape
 * `{"error":{"message","type","param","code"}}` with the right status. A 5xx of ours says
 * nothing of its cause; the cause goes to the log.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { HubError, internalError, invalidRequest, tooLarge } from "../errors.ts";

interface SchemaError {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
}

/** Messages for schema rules whose generic wording would not help a client. */
const FRIENDLY_MESSAGES: Record<string, string> = {
  "size:pattern": "must be WIDTHxHEIGHT such as 1024x1024, or auto",
};

/** Turns schema validation errors (ajv) into one 400 naming the parameter, as OpenAI does. */
export function validationError(errors: readonly SchemaError[], part = "body"): HubError {
  const first = errors.find((error) => error.keyword !== "anyOf") ?? errors[0];
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
  const allowed = errors
    .filter((error) => error.instancePath === first?.instancePath && error.keyword === "const")
    .map((error) => String(error.params?.allowedValue));
  const detail =
    allowed.length > 0
      ? `must be one of ${allowed.join(", ")}`
      : (FRIENDLY_MESSAGES[`${name}:${first?.keyword}`] ?? first?.message ?? "is not valid");
  return invalidRequest(`Invalid '${name}': ${detail}.`, param, "invalid_value");
}

export function toHubError(error: FastifyError | Error): HubError {
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
      return tooLarge("The request body is larger than this hub accepts.", null);
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
    const hubError = toHubError(error);
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
