/**
 * Replies in AIGNE's shapes, as byte pieces like the OpenAI reply (http/image-reply.ts): base64
 * that arrived as bytes is written as those bytes, never copied into a string.
 *
 * `/api/v2/image`: `{"images":[{"type":"url","url","mimeType"} | {"type":"file","data","mimeType"}],
 * "usage":{"inputTokens","outputTokens","aigneHubCredits","creditPrefix":"$"},"model"}`. AIGNE's
 * client requires `type` on every image and numbers (never null) in `usage`; credits are the
 * USD the key was charged.
 */
import { microsToUsd } from "../../billing/money.ts";
import type { GeneratedImageData, GenerationResult } from "../../images/generate.ts";
import { dataPieces } from "../image-reply.ts";

const QUOTE = Buffer.from('"');

export function aigneInvokePieces(result: GenerationResult, fileType: "url" | "file"): Buffer[] {
  const pieces: Buffer[] = [Buffer.from('{"images":[')];
  result.data.forEach((image, index) => {
    if (index > 0) pieces.push(Buffer.from(","));
    pieces.push(...imagePieces(image, fileType));
  });
  const usage = {
    inputTokens: result.usage?.input_tokens ?? 0,
    outputTokens: result.usage?.output_tokens ?? 0,
    aigneHubCredits: microsToUsd(result.costMicros),
    creditPrefix: "$",
  };
  pieces.push(
    Buffer.from(
      `],"usage":${JSON.stringify(usage)},"model":${JSON.stringify(result.job.model.id)}}`,
    ),
  );
  return pieces;
}

function imagePieces(image: GeneratedImageData, fileType: "url" | "file"): Buffer[] {
  const mimeType = JSON.stringify(image.mimeType);
  if (fileType === "url" || image.b64_json === undefined) {
    return [
      Buffer.from(`{"type":"url","url":${JSON.stringify(image.url)},"mimeType":${mimeType}}`),
    ];
  }
  const open = Buffer.from('{"type":"file","data":');
  const close = Buffer.from(`,"mimeType":${mimeType}}`);
  if (typeof image.b64_json === "string") {
    return [open, Buffer.from(JSON.stringify(image.b64_json)), close];
  }
  // Bytes cut from the upstream's JSON hold no quote or backslash (providers/json-cut.ts).
  return [open, QUOTE, ...image.b64_json, QUOTE, close];
}

/**
 * `/api/v2/image/generations`: the OpenAI reply with AIGNE Hub's additions, `images` (the same
 * items as `data`), `model`, and the credits charged in `usage`.
 */
export function aigneGenerationsPieces(result: GenerationResult): Buffer[] {
  const data = dataPieces(result.data);
  const usage = {
    ...(result.usage ?? {}),
    aigneHubCredits: microsToUsd(result.costMicros),
    creditPrefix: "$",
  };
  return [
    Buffer.from(`{"created":${result.created},"data":`),
    ...data,
    Buffer.from(',"images":'),
    ...data,
    Buffer.from(
      `,"model":${JSON.stringify(result.job.model.id)},"usage":${JSON.stringify(usage)}}`,
    ),
  ];
}
