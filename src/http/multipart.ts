/**
 * Reads an OpenAI-style multipart edit request (`image` or `image[]` files or URLs, an optional
 * `mask`, and the other parameters as text fields) into the same request object the JSON
 * endpoint takes.
 *
 * Bounds: the multipart plugin caps each file and the number of parts (app.ts); the whole body
 * is held to MAX_BODY_BYTES here, by Content-Length before reading and by counting while
 * reading (a chunked upload has no Content-Length), since the plugin does not apply it.
 */
import type { FastifyRequest } from "fastify";
import { invalidRequest, isHubError, tooLarge } from "../errors.ts";
import type { ImageJobRequest, ImageSource } from "../images/plan.ts";

const IMAGE_FIELDS = new Set(["image", "image[]"]);
const NUMBER_FIELDS = new Set(["n", "output_compression"]);

export async function readMultipartEdit(request: FastifyRequest): Promise<Record<string, unknown>> {
  const limit = request.routeOptions.bodyLimit ?? Number.POSITIVE_INFINITY;
  const bodyTooLarge = () =>
    tooLarge(`The request body is larger than this hub accepts (${limit} bytes).`, null);
  if (Number(request.headers["content-length"] ?? 0) > limit) throw bodyTooLarge();

  const fields: Record<string, unknown> = {};
  const images: ImageSource[] = [];
  let mask: ImageSource | undefined;
  let total = 0;
  for await (const part of request.parts()) {
    const value = part.type === "file" ? await fileBytes(part) : String(part.value);
    total += typeof value === "string" ? Buffer.byteLength(value) : value.length;
    if (total > limit) throw bodyTooLarge();
    if (IMAGE_FIELDS.has(part.fieldname)) {
      images.push(value);
    } else if (part.fieldname === "mask") {
      mask = value;
    } else if (part.type === "file") {
      throw invalidRequest(
        `Unexpected file in field '${part.fieldname}': files go in 'image', 'image[]' or 'mask'.`,
        part.fieldname,
        "unexpected_file",
      );
    } else {
      fields[part.fieldname] = NUMBER_FIELDS.has(part.fieldname) ? numberOrText(value) : value;
    }
  }
  const body: Partial<ImageJobRequest> & Record<string, unknown> = { ...fields };
  if (images.length > 0) body.image = images;
  if (mask !== undefined) body.mask = mask;
  return body;
}

/** A file's bytes; a file over the per-file limit is a 413 that names its field. */
async function fileBytes(part: { fieldname: string; toBuffer(): Promise<Buffer> }) {
  try {
    return await part.toBuffer();
  } catch (error) {
    if (!isHubError(error) && (error as { code?: string }).code === "FST_REQ_FILE_TOO_LARGE") {
      throw tooLarge(
        `The file in '${part.fieldname}' is larger than this hub accepts for one image.`,
        part.fieldname.replace("[]", ""),
      );
    }
    throw error;
  }
}

function numberOrText(value: ImageSource): unknown {
  const text = String(value).trim();
  return /^-?\d+$/.test(text) ? Number(text) : text;
}
