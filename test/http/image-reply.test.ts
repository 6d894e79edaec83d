import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { imageReplyPieces } from "../../src/http/image-reply.ts";
import type { GenerationResult } from "../../src/images/generate.ts";

function replyOf(result: Partial<GenerationResult>): unknown {
  const pieces = imageReplyPieces({
    created: 1700000000,
    data: [],
    usage: undefined,
    ...result,
  } as GenerationResult);
  return JSON.parse(Buffer.concat(pieces).toString("utf8"));
}

const PNG = "image/png" as const;

describe("imageReplyPieces", () => {
  it("spells the same JSON as JSON.stringify, for bytes and strings alike", () => {
    const data = [
      // mimeType is for AIGNE's reply: the OpenAI one below must not carry it.
      {
        b64_json: [Buffer.from("QU"), Buffer.from("JD")],
        revised_prompt: 'a "quoted" prompt\n',
        mimeType: PNG,
      },
      { b64_json: "REVG", mimeType: PNG },
      { url: "http://hub/files/images/x.png?expires=1&signature=a", mimeType: PNG },
    ];
    const usage = { input_tokens: 1, output_tokens: 2, total_tokens: 3 };
    assert.deepEqual(replyOf({ data, usage }), {
      created: 1700000000,
      data: [
        { b64_json: "QUJD", revised_prompt: 'a "quoted" prompt\n' },
        { b64_json: "REVG" },
        { url: "http://hub/files/images/x.png?expires=1&signature=a" },
      ],
      usage,
    });
  });

  it("escapes string base64 it did not cut itself", () => {
    const reply = replyOf({ data: [{ b64_json: 'QU"}],"x":"', mimeType: PNG }] }) as {
      data: Array<{ b64_json: string }>;
    };
    assert.equal(reply.data[0]?.b64_json, 'QU"}],"x":"');
  });

  it("passes the image bytes through as the same buffers", () => {
    const image = [Buffer.from("QU"), Buffer.from("JD")];
    const pieces = imageReplyPieces({
      created: 1,
      data: [{ b64_json: image }],
    } as unknown as GenerationResult);
    assert.ok(image.every((piece) => pieces.includes(piece)));
  });
});
