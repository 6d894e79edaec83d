import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { compileSchemasEagerly } from "../../src/http/lazy-schemas.ts";
import { startTestHub, type TestHub } from "../helpers/hub.ts";

describe("schemas compiled on first use", () => {
  const hubs: TestHub[] = [];
  after(async () => {
    compileSchemasEagerly(false);
    for (const hub of hubs) await hub.close();
  });

  it("every route's schemas compile, as they would at start", async () => {
    // Lazily, a schema that cannot compile would only fail on its route's first request.
    compileSchemasEagerly(true);
    const hub = await startTestHub();
    hubs.push(hub);
    compileSchemasEagerly(false);
    const routes = hub.app.printRoutes({ commonPrefix: false });
    assert.match(routes, /images\/generations/);
  });

  it("refuses and strips exactly as the eager compilers do", async () => {
    const hub = await startTestHub();
    hubs.push(hub);
    const refused = await fetch(`${hub.url}/v1/images/generations`, {
      method: "POST",
      headers: { authorization: `Bearer ${hub.key}`, "content-type": "application/json" },
      body: JSON.stringify({ prompt: "a lighthouse", n: "2" }),
    });
    assert.equal(refused.status, 400);
    const { error } = (await refused.json()) as { error: Record<string, unknown> };
    assert.equal(error.param, "n");
    assert.equal(error.type, "invalid_request_error");
    // The same route again: the compiled validator is reused, and says the same.
    const again = await fetch(`${hub.url}/v1/images/generations`, {
      method: "POST",
      headers: { authorization: `Bearer ${hub.key}`, "content-type": "application/json" },
      body: JSON.stringify({ prompt: "a lighthouse", n: "2" }),
    });
    assert.deepEqual(((await again.json()) as { error: unknown }).error, error);
    // A reply schema still decides what is written: the key list never shows a secret's hash.
    const keys = await fetch(`${hub.url}/api/admin/keys`, {
      headers: { authorization: `Bearer ${hub.adminKey}` },
    });
    assert.equal(keys.status, 200);
    const text = await keys.text();
    assert.doesNotMatch(text, /secret_hash|secretHash/);
    assert.ok(((JSON.parse(text) as { data: unknown[] }).data?.length ?? 0) >= 1);
  });
});
