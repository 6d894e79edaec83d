import assert from "node:assert/strict";
import { HubError } from "../../src/errors.ts";

/** The HubError a promise rejects with; fails the test if it resolves or rejects otherwise. */
export async function hubErrorOf(promise: Promise<unknown>): Promise<HubError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof HubError, `expected a HubError, got ${String(error)}`);
    return error;
  }
  assert.fail("expected the call to fail");
}
