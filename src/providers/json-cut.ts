/**
 * Reads a JSON reply whose bulk is a few huge base64 strings without scanning them as text.
 *
 * `JSON.parse` of an image reply, then `JSON.stringify` and UTF-8 encoding of the hub's own
 * reply, walk every byte of the base64 three times and keep several copies alive; profiled, that
 * was most of the hub's CPU on 1.5 MB images. Instead, the values of one field are located in the
 * raw bytes with native `indexOf`, cut out as slices of the reply (no copy), and only the small
 * rest (the "skeleton", with those values emptied) is parsed.
 *
 * Why this is safe: in valid JSON a `"` inside a string is always escaped as `\"`, so the bytes
 * `"b64_json"` followed by `:` can only be an object key, and the value ends at the next `"`. A
 * value with a backslash (an escape) or a non-ASCII byte is not plain base64: the caller gets
 * `undefined` and parses the whole reply the ordinary way. The skeleton is parsed by
 * `JSON.parse`, so the reply's structure is still fully checked.
 */
import { isAscii } from "node:buffer";

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;

export interface CutReply {
  /** The reply parsed, with every value of the field replaced by "". */
  skeleton: unknown;
  /** The field's values in document order, as slices of the reply's bytes (ASCII). */
  values: Buffer[];
}

/**
 * @example
 * const cut = cutStringFields(replyBytes, "b64_json");
 * // cut.skeleton.data[0].b64_json === "" and cut.values[0] holds its bytes
 */
export function cutStringFields(bytes: Buffer, field: string): CutReply | undefined {
  const key = Buffer.from(`"${field}"`);
  const pieces: Buffer[] = [];
  const values: Buffer[] = [];
  let position = 0;
  for (
    let found = bytes.indexOf(key, position);
    found !== -1;
    found = bytes.indexOf(key, position)
  ) {
    let cursor = skipWhitespace(bytes, found + key.length);
    if (bytes[cursor] !== COLON) return undefined;
    cursor = skipWhitespace(bytes, cursor + 1);
    if (bytes[cursor] !== QUOTE) return undefined;
    const start = cursor + 1;
    const end = bytes.indexOf(QUOTE, start);
    if (end === -1) return undefined;
    const value = bytes.subarray(start, end);
    if (value.includes(BACKSLASH) || !isAscii(value)) return undefined;
    pieces.push(bytes.subarray(position, start));
    values.push(value);
    position = end;
  }
  pieces.push(bytes.subarray(position));
  try {
    return { skeleton: JSON.parse(Buffer.concat(pieces).toString("utf8")), values };
  } catch {
    return undefined;
  }
}

function skipWhitespace(bytes: Buffer, index: number): number {
  let cursor = index;
  while (cursor < bytes.length) {
    const byte = bytes[cursor];
    if (byte !== 0x20 && byte !== 0x0a && byte !== 0x0d && byte !== 0x09) break;
    cursor++;
  }
  return cursor;
}
