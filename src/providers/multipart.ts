/**
 * Encodes a multipart/form-data body (RFC 7578) as bytes.
 *
 * Written out rather than built with FormData: Node ships one undici and the hub uses the npm
 * one, and their FormData and Blob classes do not mix (the npm `request` refuses Node's
 * FormData, and hangs reading Node's Blob inside its own). Bytes work with every client.
 */
import { randomBytes } from "node:crypto";

export type MultipartPart =
  | { name: string; value: string }
  | { name: string; filename: string; contentType: string; bytes: Buffer };

export interface EncodedMultipart {
  body: Buffer;
  /** The Content-Type header, with the boundary. */
  contentType: string;
}

export function encodeMultipart(parts: readonly MultipartPart[]): EncodedMultipart {
  // 32 random hex characters: a boundary that occurs inside image bytes by chance is not a risk.
  const boundary = `----image-hub-${randomBytes(16).toString("hex")}`;
  const chunks: Buffer[] = [];
  for (const part of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${escapeName(part.name)}"`;
    if ("bytes" in part) {
      head += `; filename="${escapeName(part.filename)}"\r\nContent-Type: ${part.contentType}`;
    }
    chunks.push(Buffer.from(`${head}\r\n\r\n`));
    chunks.push("bytes" in part ? part.bytes : Buffer.from(part.value));
    chunks.push(Buffer.from("\r\n"));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

/** Quotes and line breaks in names are percent-encoded, as browsers do (HTML's form encoding). */
function escapeName(name: string): string {
  return name.replace(/"/g, "%22").replace(/\r/g, "%0D").replace(/\n/g, "%0A");
}
