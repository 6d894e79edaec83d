/**
 * The playground's own request for images: `session.api.call` returns only the JSON, and the
 * reply's headers say which model served it (a retired one's successor) and what went wrong
 * quietly (X-Image-Hub-Warnings) and what it cost (X-Image-Hub-Cost). Errors are `ApiError`,
 * as api.ts makes them.
 */
import type { Api } from "../api.ts";
import type { ImageReply, JobSettings } from "./types.ts";

export async function requestImages(
  api: Api,
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
  const response = await api.send(path, { ...init, signal });
  const body = (await response.json()) as { data?: { url?: string; revised_prompt?: string }[] };
  const warnings = response.headers.get("x-image-hub-warnings");
  const cost = response.headers.get("x-image-hub-cost");
  return {
    images: (body.data ?? []).flatMap((item) =>
      item.url ? [{ url: item.url, revised_prompt: item.revised_prompt }] : [],
    ),
    model: response.headers.get("x-image-hub-model"),
    recordId: response.headers.get("x-image-hub-record-id"),
    cost: cost === null ? undefined : Number(cost),
    warnings: warnings ? warnings.split(" | ") : [],
    partial: response.headers.get("x-image-hub-partial"),
  };
}
