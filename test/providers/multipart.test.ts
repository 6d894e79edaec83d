import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodeMultipart } from "../../src/providers/multipart.ts";

describe("encodeMultipart", () => {
  it("writes fields and files that a standard parser reads back exactly", async () => {
    const bytes = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff]);
    const { body, contentType } = encodeMultipart([
      { name: "prompt", value: 'a "quoted"\r\nprompt' },
      { name: "n", value: "2" },
      { name: "image[]", filename: "image-0.png", contentType: "image/png", bytes },
      {
        name: "image[]",
        filename: "image-1.png",
        contentType: "image/png",
        bytes: bytes.subarray(2),
      },
    ]);
    const form = await new Response(body, { headers: { "content-type": contentType } }).formData();
    assert.equal(form.get("prompt"), 'a "quoted"\r\nprompt');
    assert.equal(form.get("n"), "2");
    const files = form.getAll("image[]") as File[];
    assert.deepEqual(
      files.map((file) => [file.name, file.type]),
      [
        ["image-0.png", "image/png"],
        ["image-1.png", "image/png"],
      ],
    );
    const [first, second] = files;
    assert.ok(first && second);
    assert.ok(Buffer.from(await first.arrayBuffer()).equals(bytes));
    assert.ok(Buffer.from(await second.arrayBuffer()).equals(bytes.subarray(2)));
  });

  it("uses a fresh boundary each time and escapes quotes in names", () => {
    const first = encodeMultipart([{ name: 'a"b', value: "x" }]);
    const second = encodeMultipart([{ name: "a", value: "x" }]);
    assert.notEqual(first.contentType, second.contentType);
    assert.match(first.body.toString(), /name="a%22b"/);
  });
});
