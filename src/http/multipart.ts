/**
 * Reads an OpenAI-style multipart edit request (`image` or `image[]` files or URLs, an optional
 * `mask`, and the other parameters as text fields) into the same request object the JSON
 * endpoint takes.
 *
 * Every bound is answered with a 4xx that names it, while the body is still arriving:
 * - the whole body, MAX_BODY_BYTES: by Content-Length before reading, and by counting the raw
 *   bytes as they arrive, since a chunked upload has no Content-Length and the parser reads
 *   bytes it never hands over (a preamble, the discarded tail of a truncated part);
 * - each file (MAX_INPUT_IMAGE_BYTES), each text field, the number of files, fields and parts
 *   (`formLimitsOf`), applied by the multipart plugin and turned here into errors naming them;
 * - a body the parser cannot read (no boundary, cut short, a broken part header) is a 400.
 */
import multipart from "@fastify/multipart";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { type HubError, invalidRequest, isHubError, tooLarge } from "../errors.ts";
import type { ImageJobRequest, ImageSource } from "../images/plan.ts";
import { MAX_INPUT_IMAGES, MAX_PROMPT_LENGTH } from "../images/schema.ts";
import { bodyTooLarge } from "./errors.ts";

export interface FormLimits {
  /** MAX_BODY_BYTES: the whole body. */
  bodyBytes: number;
  /** One file: MAX_INPUT_IMAGE_BYTES (never more than the body). */
  fileBytes: number;
  /** One text field: room for an image sent as a base64 data URL, or the longest prompt. */
  fieldBytes: number;
  /** Image files and a mask. */
  files: number;
  /** OpenAI's edit form has about fifteen text fields; the rest is room for new ones. */
  fields: number;
  /** Fewer than files + fields: parts without a name count only here. */
  parts: number;
}

const IMAGE_FIELDS = new Set(["image", "image[]"]);
const NUMBER_FIELDS = new Set(["n", "output_compression"]);
const BOOLEAN_FIELDS = new Set(["stream"]);
/** A data URL's `data:image/png;base64,` header, with room to spare (images/inputs.ts). */
const DATA_URL_HEADER_BYTES = 256;
/** The name under which the limits are kept on the app, for the edit routes to read. */
const LIMITS_DECORATION = "formLimits";

export function formLimitsOf(config: {
  maxBodyBytes: number;
  maxInputImageBytes: number;
}): FormLimits {
  const fileBytes = Math.min(config.maxInputImageBytes, config.maxBodyBytes);
  const base64Bytes = Math.ceil(fileBytes / 3) * 4 + DATA_URL_HEADER_BYTES;
  return {
    bodyBytes: config.maxBodyBytes,
    fileBytes,
    fieldBytes: Math.min(config.maxBodyBytes, Math.max(base64Bytes, MAX_PROMPT_LENGTH * 4)),
    files: MAX_INPUT_IMAGES + 1,
    fields: 30,
    parts: 40,
  };
}

/**
 * Registers the multipart plugin with the hub's limits, and keeps the limits on the app so the
 * edit routes can name them in errors.
 */
export async function registerMultipart(
  app: FastifyInstance,
  config: { maxBodyBytes: number; maxInputImageBytes: number },
): Promise<void> {
  const limits = formLimitsOf(config);
  app.decorate(LIMITS_DECORATION, limits);
  await app.register(multipart, {
    limits: {
      fileSize: limits.fileBytes,
      files: limits.files,
      fields: limits.fields,
      fieldSize: limits.fieldBytes,
      parts: limits.parts,
    },
    throwFileSizeLimit: true,
    // busboy (@fastify/busboy 3.2.6) never finishes a form when a part it skips (one without
    // `Content-Disposition: form-data`) fills its buffer in one write: 64 KiB of such a part
    // hung the request for ever. A buffer larger than any body it can be given (the body is
    // cut off at `bodyBytes`) never fills; memory stays bounded by the body limit.
    fileHwm: limits.bodyBytes + 1,
  });
}

/** The limits `registerMultipart` applied to this app. */
export function formLimitsOfApp(app: FastifyInstance): FormLimits {
  return app.getDecorator<FormLimits>(LIMITS_DECORATION);
}

/**
 * The edit request a multipart body carries. Rejects with a HubError (4xx) for a body over a
 * limit or one that cannot be parsed; stops reading the body as soon as it is over the limit.
 */
export async function readMultipartEdit(
  request: FastifyRequest,
  limits: FormLimits,
): Promise<Record<string, unknown>> {
  const bodyLimit = Math.min(limits.bodyBytes, request.routeOptions.bodyLimit ?? limits.bodyBytes);
  if (Number(request.headers["content-length"] ?? 0) > bodyLimit) throw bodyTooLarge(bodyLimit);
  // The guard listens before the parser is piped (in the same tick), so it sees every byte.
  const guard = guardBodySize(request, bodyLimit);
  try {
    return await Promise.race([readForm(request, limits), guard.exceeded]);
  } catch (error) {
    throw formError(error, limits);
  } finally {
    guard.stop();
  }
}

async function readForm(
  request: FastifyRequest,
  limits: FormLimits,
): Promise<Record<string, unknown>> {
  const fields: Record<string, unknown> = {};
  const images: ImageSource[] = [];
  let mask: ImageSource | undefined;
  for await (const part of request.parts()) {
    const name = part.fieldname;
    const isImage = IMAGE_FIELDS.has(name);
    if (!isImage && name !== "mask") {
      if (part.type === "file") {
        throw invalidRequest(
          `Unexpected file in field '${name}': files go in 'image', 'image[]' or 'mask'.`,
          name,
          "unexpected_file",
        );
      }
      refuseRepeat(Object.hasOwn(fields, name), name);
      fields[name] = typedValue(name, fieldText(part, limits));
      continue;
    }
    const value = part.type === "file" ? await fileBytes(part, limits) : fieldText(part, limits);
    if (isImage) {
      images.push(value);
    } else {
      refuseRepeat(mask !== undefined, name);
      mask = value;
    }
  }
  const body: Partial<ImageJobRequest> & Record<string, unknown> = { ...fields };
  if (images.length > 0) body.image = images;
  if (mask !== undefined) body.mask = mask;
  return body;
}

/**
 * A field sent twice is refused rather than read as its first or last value: a proxy or log in
 * front of the hub may have read the other one. Images are the one field that repeats.
 */
function refuseRepeat(repeated: boolean, name: string): void {
  if (repeated) {
    throw invalidRequest(
      `The field '${name}' is sent more than once; send it once (only images repeat).`,
      name,
      "duplicate_parameter",
    );
  }
}

/**
 * Counts the body's bytes as they arrive. Past the limit it stops feeding the parser (whose
 * pending parts are dropped with the request) and lets the rest drain until the reply, which
 * closes the connection (images.ts), so a client that streams forever is answered at once.
 */
function guardBodySize(request: FastifyRequest, limit: number) {
  const raw = request.raw;
  let received = 0;
  let reject: (error: HubError) => void = () => {};
  const exceeded = new Promise<never>((_resolve, rejectWith) => {
    reject = rejectWith;
  });
  const onData = (chunk: Buffer) => {
    received += chunk.length;
    if (received <= limit) return;
    raw.off("data", onData);
    raw.unpipe();
    raw.resume();
    reject(bodyTooLarge(limit));
  };
  raw.on("data", onData);
  return { exceeded, stop: () => raw.off("data", onData) };
}

/** A file's bytes; a file over the per-file limit is a 413 that names its field. */
async function fileBytes(
  part: { fieldname: string; toBuffer(): Promise<Buffer> },
  limits: FormLimits,
): Promise<Buffer> {
  try {
    return await part.toBuffer();
  } catch (error) {
    if ((error as { code?: string }).code === "FST_REQ_FILE_TOO_LARGE") {
      throw tooLarge(
        `The file in '${part.fieldname}' is larger than this hub accepts for one image ` +
          `(${limits.fileBytes} bytes).`,
        part.fieldname.replace("[]", ""),
      );
    }
    throw error;
  }
}

/** A text field's value; the parser cuts long ones short silently, so a cut one is refused. */
function fieldText(
  part: { fieldname: string; value: unknown; valueTruncated: boolean },
  limits: FormLimits,
): string {
  if (part.valueTruncated) {
    throw tooLarge(
      `The field '${part.fieldname}' is longer than this hub accepts (${limits.fieldBytes} bytes).`,
      part.fieldname.replace("[]", ""),
    );
  }
  // A part sent as application/json arrives parsed; its JSON text stands for it.
  return typeof part.value === "string" ? part.value : (JSON.stringify(part.value) ?? "");
}

/**
 * Form fields are text; numbers and booleans are read as JSON would have them, so the schema
 * checks them alike ("2" is 2, "false" is false). Anything else stays text, for the schema to
 * refuse by name.
 */
function typedValue(name: string, value: string): unknown {
  const text = value.trim();
  if (NUMBER_FIELDS.has(name) && /^-?\d+$/.test(text)) return Number(text);
  if (BOOLEAN_FIELDS.has(name) && (text === "true" || text === "false")) return text === "true";
  return value;
}

/** Plugin and parser errors as errors a client can act on; ours pass through. */
function formError(error: unknown, limits: FormLimits): unknown {
  if (isHubError(error)) return error;
  const code = (error as { code?: unknown }).code;
  switch (code) {
    case "FST_PARTS_LIMIT":
      return tooLarge(`The form has more than ${limits.parts} parts.`, null);
    case "FST_FILES_LIMIT":
      return tooLarge(
        `The form has more than ${limits.files} files (${limits.files - 1} images and a mask).`,
        "image",
      );
    case "FST_FIELDS_LIMIT":
      return tooLarge(`The form has more than ${limits.fields} text fields.`, null);
    case "FST_PROTO_VIOLATION":
      return invalidRequest(
        "A form field is named like a property of every object (__proto__, constructor, ...).",
        null,
        "invalid_field_name",
      );
    case "FST_INVALID_JSON_FIELD_ERROR":
      return invalidRequest(
        "A form field declared as application/json is not valid JSON.",
        null,
        "invalid_json",
      );
    // The client went away; the error handler logs it as such.
    case "ECONNRESET":
    case "ERR_STREAM_PREMATURE_CLOSE":
    case "FST_MP_PREMATURE_CLOSE":
      return error;
  }
  // Whatever else the parser throws is about the body it was given (no boundary, cut short, a
  // malformed part header); its messages are fixed strings, safe to show.
  const reason = error instanceof Error ? ` (${error.message.slice(0, 200)})` : "";
  return invalidRequest(
    `The multipart/form-data body could not be read${reason}.`,
    null,
    "invalid_multipart",
  );
}
