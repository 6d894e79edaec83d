/**
 * Base64 text as an upstream gave it: a string, or its ASCII bytes as views of the reply's
 * pieces (json-cut.ts), so a 1.5 MB image is never turned into a JavaScript string nor copied
 * into one buffer. Only a consumer that needs the image's bytes decodes it.
 */
export type Base64 = string | readonly Buffer[];

/** The first `chars` characters, for sniffing a type or a data URL's prefix. */
export function base64Head(value: Base64, chars: number): string {
  if (typeof value === "string") return value.slice(0, chars);
  let head = "";
  for (const piece of value) {
    if (head.length >= chars) break;
    head += piece.toString("latin1", 0, chars - head.length);
  }
  return head;
}

export function base64Length(value: Base64): number {
  if (typeof value === "string") return value.length;
  return value.reduce((sum, piece) => sum + piece.length, 0);
}

/** The text without its first `chars` characters (a data URL's prefix); views stay views. */
export function base64After(value: Base64, chars: number): Base64 {
  if (typeof value === "string") return value.slice(chars);
  const rest: Buffer[] = [];
  let skip = chars;
  for (const piece of value) {
    if (skip >= piece.length) {
      skip -= piece.length;
      continue;
    }
    rest.push(skip > 0 ? piece.subarray(skip) : piece);
    skip = 0;
  }
  return rest;
}

/** The image's bytes. */
export function decodeBase64(value: Base64): Buffer {
  const text =
    typeof value === "string" ? value : Buffer.concat(value as Buffer[]).toString("latin1");
  return Buffer.from(text, "base64");
}
