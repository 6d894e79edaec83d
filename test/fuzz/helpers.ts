/**
 * What the fuzz tests share: an inject that fails instead of hanging, and the check of a 4xx in
 * the OpenAI error shape.
 */
import assert from "node:assert/strict";
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from "fastify";

/** Longer than any valid request takes here; a request still unanswered then has hung. */
export const REPLY_TIMEOUT_MS = 5_000;

/** `app.inject`, rejected when no reply comes within `REPLY_TIMEOUT_MS`. */
export async function injectInTime(
  app: FastifyInstance,
  options: InjectOptions,
): Promise<LightMyRequestResponse> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no reply within ${REPLY_TIMEOUT_MS} ms: the request hung`)),
      REPLY_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([app.inject(options), hung]);
  } finally {
    clearTimeout(timer);
  }
}

/** A 4xx whose body is exactly `{"error":{"message","type","param","code"}}`, typed as OpenAI's. */
export function assertErrorShape(response: LightMyRequestResponse): void {
  const { statusCode } = response;
  assert.ok(statusCode >= 400 && statusCode < 500, `a 4xx, got ${statusCode}: ${response.body}`);
  let body: unknown;
  try {
    body = JSON.parse(response.body);
  } catch {
    assert.fail(`a JSON body, got ${statusCode}: ${response.body.slice(0, 200)}`);
  }
  assert.ok(body !== null && typeof body === "object" && !Array.isArray(body), response.body);
  assert.deepEqual(Object.keys(body), ["error"], response.body);
  const error = (body as { error: unknown }).error as Record<string, unknown>;
  assert.ok(error !== null && typeof error === "object", response.body);
  assert.deepEqual(Object.keys(error).sort(), ["code", "message", "param", "type"], response.body);
  assert.equal(typeof error.message, "string", response.body);
  assert.ok((error.message as string).length > 0, response.body);
  assert.equal(typeof error.type, "string", response.body);
  assert.ok(error.param === null || typeof error.param === "string", response.body);
  assert.ok(error.code === null || typeof error.code === "string", response.body);
}

/**
 * Whether the text has a character XML 1.0 forbids (C0 controls but tab and newlines, U+FFFE,
 * U+FFFF): local/placeholder draws the prompt into an SVG, which once failed on them (a 500);
 * request-schema.test.ts sends such prompts on purpose.
 */
export function hasXmlForbidden(text: string): boolean {
  for (let index = 0; index < text.length; index++) {
    const unit = text.charCodeAt(index);
    const control = unit < 0x20 && unit !== 0x09 && unit !== 0x0a && unit !== 0x0d;
    if (control || unit === 0xfffe || unit === 0xffff) return true;
  }
  return false;
}
