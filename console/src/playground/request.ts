/**
 * The playground's own request for images: `session.api.call` returns only the JSON, and the
 * reply's headers say which model served it (a retired one's successor) and what went wrong
 * quietly (X-Image-Hub-Warnings). Errors are `ApiError` exactly as api.ts makes them.
 */
import { type Api, ApiError, type ApiErrorBody, apiUrl } from "../api.ts";
import type { ImageReply, JobSettings } from "./types.ts";

export async function requestImages(
  key: string,
  settings: JobSettings,
  signal: AbortSignal,
): Promise<ImageReply> {
  const { edit, ...options } = settings;
  const fields = { ...options, response_format: "url" };
  let init: RequestInit;
  if (edit) {
    const form = new FormData();
    for (const [name, value] of Object.entries(fields)) {
      if (value !== undefined && value !== "") form.append(name, String(value));
    }
    form.append("image", edit.image, edit.name);
    if (edit.mask) form.append("mask", edit.mask, "mask.png");
    init = { method: "POST", body: form };
  } else {
    init = {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(fields),
    };
  }
  const path = edit ? "/api/images/edits" : "/api/images/generations";
  let response: Response;
  try {
    response = await fetch(apiUrl(path), {
      ...init,
      headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${key}` },
      signal,
    });
  } catch (error) {
    if (error instanceof DOMException && error.name === "AbortError") throw error;
    throw new ApiError(0, {
      message: "The hub could not be reached.",
      type: "network_error",
      param: null,
      code: null,
    });
  }
  if (!response.ok) throw new ApiError(response.status, await errorOf(response));
  const body = (await response.json()) as { data?: { url?: string; revised_prompt?: string }[] };
  const warnings = response.headers.get("x-image-hub-warnings");
  return {
    images: (body.data ?? []).flatMap((item) =>
      item.url ? [{ url: item.url, revised_prompt: item.revised_prompt }] : [],
    ),
    model: response.headers.get("x-image-hub-model"),
    recordId: response.headers.get("x-image-hub-record-id"),
    warnings: warnings ? warnings.split(" | ") : [],
    partial: response.headers.get("x-image-hub-partial"),
  };
}

/**
 * What the request cost: the reply does not say, but the gallery lists each hosted image with
 * its share of its request's cost and the request's record id.
 */
export async function costOf(api: Api, reply: ImageReply): Promise<number | undefined> {
  if (!reply.recordId || !reply.model) return undefined;
  const query = new URLSearchParams({ model: reply.model, limit: "50" });
  const list = await api.call<{ data: { record_id: string; cost: number }[] }>(
    "GET",
    `/api/images?${query}`,
  );
  const mine = list.data.filter((image) => image.record_id === reply.recordId);
  return mine.length === 0 ? undefined : mine.reduce((sum, image) => sum + image.cost, 0);
}

/** The hub's error as api.ts reads it (that helper is not exported). */
async function errorOf(response: Response): Promise<ApiErrorBody> {
  const fallback = {
    message: `The hub answered ${response.status} ${response.statusText}.`,
    type: "api_error",
    param: null,
    code: null,
  };
  try {
    const parsed = (await response.json()) as { error?: Partial<ApiErrorBody> };
    if (!parsed.error || typeof parsed.error.message !== "string") return fallback;
    return {
      message: parsed.error.message,
      type: parsed.error.type ?? "api_error",
      param: parsed.error.param ?? null,
      code: parsed.error.code ?? null,
    };
  } catch {
    return fallback;
  }
}
