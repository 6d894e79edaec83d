/**
 * What AIGNE's clients send, as the request the image pipeline takes. Pure: no HTTP, no I/O.
 *
 * `POST /api/v2/image` carries `{"input":{prompt, n?, image?, outputFileType?, modelOptions?, …},
 * "agent", "options"}`. Options may sit at the top of `input` or in `input.modelOptions`, in
 * camelCase or snake_case; the top of `input` wins, as in AIGNE's own image models. The model is
 * `input.modelOptions.model` (older clients send a top-level `model`). Unlike the OpenAI routes,
 * fields the hub does not use are not refused (the framework adds its own): they are named in
 * the warnings instead, so nothing is dropped silently.
 *
 * `POST /api/v2/image/generations` carries OpenAI's fields at the top, `responseFormat` and the
 * other camelCase spellings accepted too.
 */
import { invalidRequest } from "../../errors.ts";
import type { ImageJobRequest } from "../../images/plan.ts";

/** AIGNE's client sends each option under one of these names; the value is our field. */
const OPTION_FIELDS: Record<string, keyof ImageJobRequest> = {
  n: "n",
  size: "size",
  quality: "quality",
  style: "style",
  background: "background",
  moderation: "moderation",
  user: "user",
  outputFormat: "output_format",
  output_format: "output_format",
  outputCompression: "output_compression",
  output_compression: "output_compression",
  responseFormat: "response_format",
  response_format: "response_format",
};

/** Framework fields with no meaning here, dropped without a warning. */
const FRAMEWORK_FIELDS = new Set(["preferInputFileType"]);

/** How AIGNE clients spell a model they mean for a hub; the hub's own names follow. */
const HUB_PREFIX = /^aignehub[/:]/i;

export interface AigneCall {
  request: ImageJobRequest;
  /** How the images go back: a hosted URL, or base64 (`file`). */
  fileType: "url" | "file";
  /** Fields the request carried that the hub did not use, by path. */
  ignored: string[];
}

/** `POST /api/v2/image`'s body as the pipeline's request. */
export function callOfAigneInvoke(body: Record<string, unknown>): AigneCall {
  const input = objectAt(body.input, "input") ?? {};
  const modelOptions = objectAt(input.modelOptions, "input[modelOptions]") ?? {};
  const ignored = unknownKeys(body, ["input", "agent", "options", "model"], "");
  const request: Record<string, unknown> = {};

  for (const [where, fields] of [
    ["input.modelOptions", modelOptions],
    ["input", input],
  ] as const) {
    for (const [name, value] of Object.entries(fields)) {
      const field = OPTION_FIELDS[name];
      if (field !== undefined) request[field] = value;
      else if (!isKnownInputField(where, name)) ignored.push(`${where}.${name}`);
    }
  }
  request.prompt = input.prompt;
  const model = modelOptions.model ?? body.model;
  if (model !== undefined) request.model = hubModelName(model);
  if (input.image !== undefined) request.image = imageSources(input.image);

  const fileType =
    input.outputFileType ?? (request.response_format === "b64_json" ? "file" : "url");
  if (fileType !== "url" && fileType !== "file" && fileType !== "local") {
    throw invalidRequest(
      "outputFileType must be 'url', 'file' or 'local'.",
      "input[outputFileType]",
      "invalid_value",
    );
  }
  // `local` is a path on the client's machine: the client fetches the URL and writes it there.
  const delivered = fileType === "file" ? "file" : "url";
  request.response_format = delivered === "file" ? "b64_json" : "url";
  return { request: request as unknown as ImageJobRequest, fileType: delivered, ignored };
}

/** `POST /api/v2/image/generations`: OpenAI's fields, camelCase spellings accepted. */
export function callOfOpenAIShaped(body: Record<string, unknown>, known: readonly string[]) {
  const request: Record<string, unknown> = {};
  const ignored: string[] = [];
  for (const [name, value] of Object.entries(body)) {
    const field = OPTION_FIELDS[name] ?? (known.includes(name) ? name : undefined);
    if (field !== undefined) request[field] = value;
    else ignored.push(name);
  }
  if (request.model !== undefined) request.model = hubModelName(request.model);
  return { request: request as unknown as ImageJobRequest, ignored };
}

function isKnownInputField(where: string, name: string): boolean {
  if (where === "input.modelOptions") return name === "model" || FRAMEWORK_FIELDS.has(name);
  return ["prompt", "image", "outputFileType", "modelOptions"].includes(name);
}

/** `aignehub/gpt-image-2` → `gpt-image-2`; other names as sent (the catalog knows `openai/…`). */
export function hubModelName<T>(model: T): T | string {
  return typeof model === "string" ? model.replace(HUB_PREFIX, "") : model;
}

/** AIGNE's file contents as the image sources the pipeline reads (URL, data URL). */
function imageSources(value: unknown): string[] {
  if (!Array.isArray(value)) {
    throw invalidRequest("input.image must be a list of images.", "input[image]", "invalid_type");
  }
  return value.map((item, index) => {
    const param = `input[image][${index}]`;
    const image = objectAt(item, param);
    if (image?.type === "url" && typeof image.url === "string") return image.url;
    if (image?.type === "file" && typeof image.data === "string") {
      const mimeType = typeof image.mimeType === "string" ? image.mimeType : "";
      return /^image\/[a-z0-9.+-]+$/i.test(mimeType)
        ? `data:${mimeType};base64,${image.data}`
        : image.data;
    }
    if (image?.type === "local") {
      throw invalidRequest(
        `${param} is a file on the client's machine, which the hub cannot read: send it as {"type":"file","data":"<base64>"}.`,
        param,
        "invalid_value",
      );
    }
    throw invalidRequest(
      `${param} must be {"type":"url","url":"…"} or {"type":"file","data":"<base64>","mimeType":"image/png"}.`,
      param,
      "invalid_value",
    );
  });
}

function objectAt(value: unknown, param: string): Record<string, unknown> | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw invalidRequest(`${param} must be an object.`, param, "invalid_type");
  }
  return value as Record<string, unknown>;
}

function unknownKeys(object: Record<string, unknown>, known: string[], prefix: string): string[] {
  return Object.keys(object)
    .filter((key) => !known.includes(key))
    .map((key) => `${prefix}${key}`);
}
