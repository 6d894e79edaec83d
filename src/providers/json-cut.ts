/**
 * Reads a JSON reply whose bulk is a few huge base64 strings without scanning them as text.
 *
 * `JSON.parse` of an image reply, then `JSON.stringify` and UTF-8 encoding of the hub's own
 * reply, walk every byte of the base64 three times and keep several copies alive; profiled, that
 * was most of the hub's CPU on 1.5 MB images. Instead, the values of one field are located in the
 * raw bytes with native `indexOf`, cut out as views of the reply's pieces (the chunks it arrived
 * in, never joined: byte-pieces.ts), and only the small rest (the "skeleton", with those values
 * emptied) is parsed.
 *
 * Why this is safe: in valid JSON a `"` inside a string is always escaped as `\"`, so the bytes
 * `"b64_json"` followed by `:` can only be an object key, and the value ends at the next `"`. A
 * value with a backslash (an escape) or a non-ASCII byte is not plain base64: the caller gets
 * `undefined` and parses the whole reply the ordinary way. The skeleton is parsed by
 * `JSON.parse`, so the reply's structure is still fully checked.
 */
import { isAscii } from "node:buffer";
import { BytePieces } from "./byte-pieces.ts";

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;

export interface CutReply {
  /** The reply parsed, with every value of the field replaced by "". */
  skeleton: unknown;
  /** The field's values in document order, each as views of the reply's bytes (ASCII). */
  values: Buffer[][];
}

/**
 * @example
 * const cut = cutStringFields(replyChunks, "b64_json");
 * // cut.skeleton.data[0].b64_json === "" and cut.values[0] holds its bytes, in pieces
 */
export function cutStringFields(
  body: Buffer | readonly Buffer[],
  field: string,
): CutReply | undefined {
  const bytes = new BytePieces(body);
  const key = Buffer.from(`"${field}"`);
  const skeleton: Buffer[] = [];
  const values: Buffer[][] = [];
  let position = 0;
  for (
    let found = bytes.indexOf(key, position);
    found !== -1;
    found = bytes.indexOf(key, position)
  ) {
    let cursor = skipWhitespace(bytes, found + key.length);
    if (bytes.byteAt(cursor) !== COLON) return undefined;
    cursor = skipWhitespace(bytes, cursor + 1);
    if (bytes.byteAt(cursor) !== QUOTE) return undefined;
    const start = cursor + 1;
    const end = bytes.indexOf(QUOTE, start);
    if (end === -1) return undefined;
    const value = bytes.slice(start, end);
    if (value.some((piece) => piece.includes(BACKSLASH) || !isAscii(piece))) return undefined;
    skeleton.push(...bytes.slice(position, start));
    values.push(value);
    position = end;
  }
  skeleton.push(...bytes.slice(position));
  try {
    return { skeleton: JSON.parse(Buffer.concat(skeleton).toString("utf8")), values };
  } catch {
    return undefined;
  }
}

function skipWhitespace(bytes: BytePieces, index: number): number {
  let cursor = index;
  for (let byte = bytes.byteAt(cursor); byte !== undefined; byte = bytes.byteAt(++cursor)) {
    if (byte !== 0x20 && byte !== 0x0a && byte !== 0x0d && byte !== 0x09) break;
  }
  return cursor;
}
