/**
 * The body of an image reply, `{"created","data":[…],"usage"?}`, as a list of byte pieces to
 * be written in order. Base64 that arrived as bytes goes out as the same bytes: never turned into
 * a string, never scanned for escapes (providers/json-cut.ts guarantees it holds no quote,
 * backslash or non-ASCII byte), never copied into a larger buffer: the socket writes the pieces
 * as they are. Everything else goes through JSON.stringify.
 */
import type { GeneratedImageData, GenerationResult } from "../images/generate.ts";

const B64_JSON_OPEN = Buffer.from('"b64_json":"');
const QUOTE = Buffer.from('"');
const COMMA = Buffer.from(",");

export function imageReplyPieces(result: GenerationResult): Buffer[] {
  const pieces = [Buffer.from(`{"created":${result.created},"data":`), ...dataPieces(result.data)];
  if (result.usage) pieces.push(Buffer.from(`,"usage":${JSON.stringify(result.usage)}`));
  pieces.push(Buffer.from("}"));
  return pieces;
}

/** The `data` array of the reply, `[` to `]`. */
export function dataPieces(data: readonly GeneratedImageData[]): Buffer[] {
  const pieces: Buffer[] = [Buffer.from("[")];
  data.forEach((item, index) => {
    if (index > 0) pieces.push(COMMA);
    pieces.push(Buffer.from("{"));
    fieldsOf(item).forEach((field, fieldIndex) => {
      if (fieldIndex > 0) pieces.push(COMMA);
      pieces.push(...field);
    });
    pieces.push(Buffer.from("}"));
  });
  pieces.push(Buffer.from("]"));
  return pieces;
}

/** Each field of one image, as the pieces that spell it. */
function fieldsOf(item: GeneratedImageData): Buffer[][] {
  const fields: Buffer[][] = [];
  if (typeof item.b64_json === "string") {
    fields.push([Buffer.from(`"b64_json":${JSON.stringify(item.b64_json)}`)]);
  } else if (item.b64_json !== undefined) {
    fields.push([B64_JSON_OPEN, ...item.b64_json, QUOTE]);
  }
  if (item.url !== undefined) fields.push([Buffer.from(`"url":${JSON.stringify(item.url)}`)]);
  if (item.revised_prompt !== undefined) {
    fields.push([Buffer.from(`"revised_prompt":${JSON.stringify(item.revised_prompt)}`)]);
  }
  return fields;
}
