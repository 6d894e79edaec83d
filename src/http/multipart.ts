/**
 * Reads an OpenAI-style multipart edit request (`image` or `image[]` files or URLs, an optional
 * `mask`, and the other parameters as text fields) into the same request object the JSON
 * endpoint takes. Sizes and counts are bounded by the multipart plugin's limits (see app.ts).
 */
import type { FastifyRequest } from "fastify";
import { invalidRequest } from "../errors.ts";
import type { ImageJobRequest, ImageSource } from "../images/plan.ts";

const IMAGE_FIELDS = new Set(["image", "image[]"]);
const NUMBER_FIELDS = new Set(["n", "output_compression"]);

export async function readMultipartEdit(request: FastifyRequest): Promise<Record<string, unknown>> {
  const fields: Record<string, unknown> = {};
  const images: ImageSource[] = [];
  let mask: ImageSource | undefined;
  for await (const part of request.parts()) {
    const value = part.type === "file" ? await part.toBuffer() : String(part.value);
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

function numberOrText(value: ImageSource): unknown {
  const text = String(value).trim();
  return /^-?\d+$/.test(text) ? Number(text) : text;
}
