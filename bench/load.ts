/**
 * Requests against one target: a single checked request before any load (does it answer what
 * the scenario expects?), autocannon runs, and one request to show the shape of an error.
 *
 * @example
 * const check = await checkOnce(scenario.expect, endpoint, body);
 * const { result, latencies } = await load(endpoint, body, { connections: 16, seconds: 3 });
 */
import type { Result } from "autocannon";
import autocannon from "autocannon";
import type { Endpoint, Scenario } from "./scenarios.ts";

/** A check request that takes longer than this means the target is stuck, not slow. */
const CHECK_TIMEOUT_MS = 30_000;

export interface Check {
  ok: boolean;
  status: number;
  replyBytes: number;
  detail: string;
}

/** One request, before any load: the target answers 200 with the images the scenario expects. */
export async function checkOnce(
  expect: Scenario["expect"],
  endpoint: Endpoint,
  body: string,
): Promise<Check> {
  const failed = (status: number, detail: string) => ({ ok: false, status, replyBytes: 0, detail });
  let response: Response;
  let text: string;
  try {
    const signal = AbortSignal.timeout(CHECK_TIMEOUT_MS);
    response = await fetch(endpoint.url, {
      method: "POST",
      headers: endpoint.headers,
      body,
      signal,
    });
    text = await response.text();
  } catch (error) {
    const reason =
      error instanceof Error ? `${error.message} (${String(error.cause ?? "")})` : String(error);
    return failed(0, reason);
  }
  const replyBytes = Buffer.byteLength(text);
  if (response.status !== 200)
    return failed(response.status, `${response.status} ${text.slice(0, 500)}`);
  let data: unknown;
  try {
    data = (JSON.parse(text) as { data?: unknown }).data;
  } catch {
    return failed(200, `200 but not JSON: ${text.slice(0, 200)}`);
  }
  const { images, kind } = expect;
  if (!Array.isArray(data) || data.length !== images) {
    return failed(200, `expected ${images} images, got ${JSON.stringify(data)?.slice(0, 200)}`);
  }
  for (const item of data as Record<string, unknown>[]) {
    const value = item[kind];
    if (typeof value !== "string" || value.length === 0) {
      return failed(200, `an image without ${kind}: ${JSON.stringify(item).slice(0, 200)}`);
    }
    if (kind === "b64_json" && !value.startsWith("iVBORw0KGgo")) {
      return failed(200, `${kind} is not a PNG: ${value.slice(0, 40)}…`);
    }
    if (kind === "url") {
      const image = await fetch(value);
      const bytes = Buffer.from(await image.arrayBuffer());
      if (image.status !== 200 || bytes.subarray(1, 4).toString() !== "PNG") {
        return failed(200, `its image ${value} answers ${image.status}`);
      }
    }
  }
  return { ok: true, status: 200, replyBytes, detail: "" };
}

/** After a run with failures: what one request answers now, to show the error's shape. */
export async function explain(endpoint: Endpoint, body: string): Promise<string> {
  try {
    const signal = AbortSignal.timeout(CHECK_TIMEOUT_MS);
    const response = await fetch(endpoint.url, {
      method: "POST",
      headers: endpoint.headers,
      body,
      signal,
    });
    const text = await response.text();
    return `${response.status} ${text.slice(0, response.ok ? 80 : 500)}`;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/**
 * One autocannon run, for `seconds` or for `amount` requests; the latencies of 2xx replies, in
 * milliseconds with sub-ms precision.
 */
export function load(
  endpoint: Endpoint,
  body: string,
  options: { connections: number; seconds?: number; amount?: number },
): Promise<{ result: Result; latencies: number[] }> {
  const latencies: number[] = [];
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: endpoint.url,
        method: "POST",
        headers: endpoint.headers,
        body,
        connections: options.connections,
        ...(options.amount === undefined
          ? { duration: options.seconds ?? 1 }
          : { amount: options.amount }),
        timeout: 30,
      },
      (error, result) => (error ? reject(error) : resolve({ result, latencies })),
    );
    // autocannon's own histogram keeps whole milliseconds: too coarse for S0.
    instance.on("response", (_client: unknown, status: number, _bytes: number, ms: number) => {
      if (status >= 200 && status < 300) latencies.push(ms);
    });
  });
}
