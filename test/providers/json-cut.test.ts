import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { cutStringFields } from "../../src/providers/json-cut.ts";

const bytes = (value: unknown) =>
  Buffer.from(typeof value === "string" ? value : JSON.stringify(value));

describe("cutStringFields", () => {
  it("cuts every value of the field out, in order, and parses the rest", () => {
    const reply = {
      created: 1,
      data: [{ b64_json: "QUJD", revised_prompt: "a" }, { b64_json: "REVG" }],
    };
    const cut = cutStringFields(bytes(reply), "b64_json");
    assert.ok(cut);
    assert.deepEqual(
      cut.values.map((value) => value.toString()),
      ["QUJD", "REVG"],
    );
    assert.deepEqual(cut.skeleton, {
      created: 1,
      data: [{ b64_json: "", revised_prompt: "a" }, { b64_json: "" }],
    });
  });

  it("hands out slices of the reply, not copies", () => {
    const raw = bytes({ data: [{ b64_json: "QUJD" }] });
    const cut = cutStringFields(raw, "b64_json");
    assert.equal(cut?.values[0]?.buffer, raw.buffer);
  });

  it("accepts whitespace around the colon", () => {
    const cut = cutStringFields(bytes('{"data":[{"b64_json" :\n "QUJD"}]}'), "b64_json");
    assert.equal(cut?.values[0]?.toString(), "QUJD");
  });

  it("does not take the field's name inside another string for a key", () => {
    const reply = { data: [{ revised_prompt: 'say "b64_json":"x"', b64_json: "QUJD" }] };
    const cut = cutStringFields(bytes(reply), "b64_json");
    assert.ok(cut);
    assert.deepEqual(
      cut.values.map((value) => value.toString()),
      ["QUJD"],
    );
    assert.equal((cut.skeleton as typeof reply).data[0]?.revised_prompt, 'say "b64_json":"x"');
  });

  it("gives up on a value with an escape or a non-ASCII byte, for a full parse instead", () => {
    assert.equal(
      cutStringFields(bytes('{"data":[{"b64_json":"QU\\u0042D"}]}'), "b64_json"),
      undefined,
    );
    assert.equal(cutStringFields(bytes('{"data":[{"b64_json":"QU\\"D"}]}'), "b64_json"), undefined);
    assert.equal(cutStringFields(bytes({ data: [{ b64_json: "QUJé" }] }), "b64_json"), undefined);
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
