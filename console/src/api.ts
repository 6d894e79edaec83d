/**
 * The console's only way to the hub: its public HTTP API with the signed-in key, so anything
 * the console does a script can do too. Errors arrive in the OpenAI shape and are kept whole.
 */

export interface ApiErrorBody {
  message: string;
  type: string;
  param: string | null;
  code: string | null;
}

export class ApiError extends Error {
  readonly status: number;
  readonly body: ApiErrorBody;

  constructor(status: number, body: ApiErrorBody) {
    super(body.message);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
  }
}

export interface Api {
  /** JSON in, JSON out; throws ApiError with the hub's own error. */
  call<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T>;
  /** Multipart (image edits with files). */
  upload<T>(path: string, form: FormData, signal?: AbortSignal): Promise<T>;
  /** A file from the API saved by the browser under `filename` (the key goes in the header). */
  download(path: string, filename: string): Promise<void>;
  /** The reply itself, for its headers (an image reply's model, cost, warnings); ApiError if not ok. */
  send(path: string, init: RequestInit): Promise<Response>;
}

/** The hub's path below its origin, as the hub wrote it into the page (`/` or `/tools/hub/`). */
export const hubBase: string =
  document.querySelector<HTMLMetaElement>('meta[name="image-hub-base"]')?.content || "/";

export function apiUrl(path: string): string {
  return `${hubBase.replace(/\/$/, "")}${path}`;
}

export function createApi(key: string): Api {
  const headers = (extra: Record<string, string> = {}) => ({
    authorization: `Bearer ${key}`,
    ...extra,
  });

  async function send(path: string, init: RequestInit): Promise<Response> {
    let response: Response;
    try {
      response = await fetch(apiUrl(path), {
        ...init,
        headers: headers(init.headers as Record<string, string> | undefined),
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
    return response;
  }

  return {
    async call<T>(method: string, path: string, body?: unknown, signal?: AbortSignal) {
      const response = await send(path, {
        method,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
      return (response.status === 204 ? undefined : await response.json()) as T;
    },
    async upload<T>(path: string, form: FormData, signal?: AbortSignal) {
      const response = await send(path, { method: "POST", body: form, signal });
      return (await response.json()) as T;
    },
    async download(path: string, filename: string) {
      const response = await send(path, {});
      const url = URL.createObjectURL(await response.blob());
      const link = document.createElement("a");
      link.href = url;
      link.download = filename;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    },
    send,
  };
}

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
