/**
 * What providers/upstream.ts reads of an upstream's error body, whichever vendor's shape, and
 * which of the request's credentials it cuts out of what the upstream says.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { credentialsOf, parseUpstreamError, redactSecrets } from "../../src/providers/upstream.ts";

describe("parseUpstreamError", () => {
  const cases: [string, string, { message?: string; code?: string }][] = [
    [
      "OpenAI's nested error",
      '{"error":{"message":"bad size","code":"invalid_size","type":"invalid_request_error","param":"size"}}',
      { message: "bad size", code: "invalid_size" },
    ],
    [
      "xAI's flat error",
      '{"code":"Client specified an invalid argument","error":"Incorrect API key"}',
      { message: "Incorrect API key", code: "Client specified an invalid argument" },
    ],
    ["FastAPI's detail", '{"detail":"Not authenticated"}', { message: "Not authenticated" }],
    [
      "FastAPI's validation errors",
      '{"detail":[{"loc":["body","width"],"msg":"value is not a valid integer","type":"type_error.integer"}]}',
      { message: "body.width: value is not a valid integer" },
    ],
    [
      "Stability's errors list",
      '{"id":"abc","name":"content_moderation","errors":["Your request was flagged by our content moderation system."]}',
      {
        message: "Your request was flagged by our content moderation system.",
        code: "content_moderation",
      },
    ],
    ["a bare message", '{"message":"Service overloaded"}', { message: "Service overloaded" }],
  ];
  for (const [name, text, expected] of cases) {
    it(`reads ${name}`, () => {
      const parsed = parseUpstreamError(text);
      assert.equal(parsed.message, expected.message);
      assert.equal(parsed.code, expected.code);
    });
  }

  it("reads nothing of what is not a JSON object", () => {
    for (const text of ["<html>502 Bad Gateway</html>", "[1,2]", "null", '"text"']) {
      assert.equal(parseUpstreamError(text).message, undefined, text);
    }
  });
});

describe("credentialsOf", () => {
  it("takes every auth, key or token header, with its scheme and without", () => {
    const basic = `Basic ${Buffer.from("alice:s3cret-pass").toString("base64")}`;
    const found = credentialsOf({
      authorization: "Bearer sk-abcdef123456",
      "api-key": "0123456789abcdef0123456789abcdef",
      "x-goog-api-key": "AIzaSyExample",
      "content-type": "application/json",
    });
    assert.ok(found.includes("sk-abcdef123456"));
    assert.ok(found.includes("0123456789abcdef0123456789abcdef"));
    assert.ok(found.includes("AIzaSyExample"));
    assert.ok(!found.includes("application/json"));
    assert.ok(credentialsOf({ authorization: basic }).includes("s3cret-pass"));
  });

  it("lets redactSecrets cut an Azure key an upstream echoes", () => {
    const key = "0123456789abcdef0123456789abcdef";
    const said = redactSecrets(`Access denied for key ${key}.`, credentialsOf({ "api-key": key }));
    assert.equal(said, "Access denied for key [redacted].");
  });
});
