import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { cutStringFields } from "../../src/providers/json-cut.ts";

const bytes = (value: unknown) =>
  Buffer.from(typeof value === "string" ? value : JSON.stringify(value));
const texts = (values: Buffer[][]) => values.map((value) => Buffer.concat(value).toString());

/** The reply cut into pieces of `size` bytes, as it might arrive from a socket. */
function inPieces(whole: Buffer, size: number): Buffer[] {
  const pieces: Buffer[] = [];
  for (let at = 0; at < whole.length; at += size) pieces.push(whole.subarray(at, at + size));
  return pieces;
}

describe("cutStringFields", () => {
  it("cuts every value of the field out, in order, and parses the rest", () => {
    const reply = {
      created: 1,
      data: [{ b64_json: "QUJD", revised_prompt: "a" }, { b64_json: "REVG" }],
    };
    const cut = cutStringFields(bytes(reply), "b64_json");
    assert.ok(cut);
    assert.deepEqual(texts(cut.values), ["QUJD", "REVG"]);
    assert.deepEqual(cut.skeleton, {
      created: 1,
      data: [{ b64_json: "", revised_prompt: "a" }, { b64_json: "" }],
    });
  });

  it("hands out views of the reply, not copies", () => {
    const raw = bytes({ data: [{ b64_json: "QUJD" }] });
    const cut = cutStringFields(raw, "b64_json");
    assert.equal(cut?.values[0]?.[0]?.buffer, raw.buffer);
  });

  it("reads a reply in pieces the same wherever the pieces break, keys and values included", () => {
    const reply = {
      created: 1,
      data: [
        { revised_prompt: 'say "b64_json":"x"', b64_json: "QUJDREVGR0hJSktMTU5PUA==" },
        { b64_json: "UVJTVFVWV1hZWg==" },
      ],
      usage: { total_tokens: 3 },
    };
    const whole = bytes(reply);
    const expected = cutStringFields(whole, "b64_json");
    assert.ok(expected);
    for (let size = 1; size <= whole.length; size++) {
      const pieces = inPieces(whole, size);
      const cut = cutStringFields(pieces, "b64_json");
      assert.ok(cut, `pieces of ${size}`);
      assert.deepEqual(cut.skeleton, expected.skeleton, `pieces of ${size}`);
      assert.deepEqual(texts(cut.values), texts(expected.values), `pieces of ${size}`);
      // Every value is made of views of the pieces that arrived.
      for (const view of cut.values.flat()) {
        assert.ok(pieces.some((piece) => piece.buffer === view.buffer));
      }
    }
  });

  it("accepts whitespace around the colon, also across pieces", () => {
    const whole = bytes('{"data":[{"b64_json" :\n "QUJD"}]}');
    assert.deepEqual(texts(cutStringFields(whole, "b64_json")?.values ?? []), ["QUJD"]);
    assert.deepEqual(texts(cutStringFields(inPieces(whole, 3), "b64_json")?.values ?? []), [
      "QUJD",
    ]);
  });

  it("does not take the field's name inside another string for a key", () => {
    const reply = { data: [{ revised_prompt: 'say "b64_json":"x"', b64_json: "QUJD" }] };
    const cut = cutStringFields(bytes(reply), "b64_json");
    assert.ok(cut);
    assert.deepEqual(texts(cut.values), ["QUJD"]);
    assert.equal((cut.skeleton as typeof reply).data[0]?.revised_prompt, 'say "b64_json":"x"');
  });

  it("gives up on a value with an escape or a non-ASCII byte, for a full parse instead", () => {
    assert.equal(
      cutStringFields(bytes('{"data":[{"b64_json":"QU\\u0042D"}]}'), "b64_json"),
      undefined,
    );
    assert.equal(cutStringFields(bytes('{"data":[{"b64_json":"QU\\"D"}]}'), "b64_json"), undefined);
    assert.equal(cutStringFields(bytes({ data: [{ b64_json: "QUJé" }] }), "b64_json"), undefined);
    assert.equal(
      cutStringFields(inPieces(bytes({ data: [{ b64_json: "QUJé" }] }), 2), "b64_json"),
      undefined,
    );
  });

  it("gives up when the field is not a string or the rest is not JSON", () => {
    assert.equal(cutStringFields(bytes('{"data":[{"b64_json":42}]}'), "b64_json"), undefined);
    assert.equal(cutStringFields(bytes('{"data":[{"b64_json":"QUJD"}]'), "b64_json"), undefined);
    assert.equal(cutStringFields(bytes('{"data":[{"b64_json":"QUJD'), "b64_json"), undefined);
  });

  it("parses a reply without the field as it is", () => {
    const cut = cutStringFields(bytes({ error: { message: "no" } }), "b64_json");
    assert.deepEqual(cut, { skeleton: { error: { message: "no" } }, values: [] });
  });
});
