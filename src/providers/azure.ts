/**
 * Azure OpenAI's image API: GPT image models deployed on an Azure OpenAI (Foundry) resource. The
 * catalog's `upstream_model` is the *deployment* name, which Azure chooses freely per resource.
 *
 * Two URL styles, chosen by `apiVersion` (AZURE_OPENAI_API_VERSION):
 *
 * | apiVersion                     | URL                                                                   |
 * | ------------------------------ | --------------------------------------------------------------------- |
 * | unset, `preview` or `v1`       | `{endpoint}/openai/v1/images/{generations,edits}?api-version=preview` |
 * | dated, e.g. `2025-04-01-preview` | `{endpoint}/openai/deployments/{deployment}/images/…?api-version=…` |
 *
 * The v1 style is the default: it is what Microsoft's image how-to documents today (deployment
 * name in the body's `model`, `api-version=preview`), and it needs no dated version bumped every
 * few months. The deployment style stays for resources and clouds without the v1 API. Both take
 * the key in the `api-key` header.
 *
 * What differs from OpenAI direct: no `webp` (Azure makes PNG and JPEG only), no `moderation`
 * (Azure filters by the content filter configured on the deployment), and refusals come as 400
 * `content_filter` (`innererror.code: ResponsibleAIPolicyViolation`) or, from the image API,
 * `contentFilter`. DALL·E 3 was retired on Azure on 2026-03-04, so every model here is a GPT
 * image model. There is no `listModels`: deployments are listed by the management API, not by
 * the data plane the key opens.
 *
 * Sources: learn.microsoft.com/azure/foundry/openai/how-to/dall-e (ms.date 2026-04-17) and its
 * includes; learn.microsoft.com/azure/foundry/openai/api-version-lifecycle.
 */
import { invalidRequest } from "../errors.ts";
import {
  type Endpoint,
  editForm,
  imagesResultOf,
  jsonRequestInit,
  mimeTypeOfFormat,
  multipartRequestInit,
  type Parameter,
} from "./openai-images.ts";
import type { HttpProviderOptions, ImageProvider, ProviderCall, ProviderResult } from "./types.ts";
import {
  DEFAULT_UPSTREAM_TIMEOUT_MS,
  requestUpstreamPieces,
  type UpstreamErrorBody,
} from "./upstream.ts";

export interface AzureProviderOptions extends HttpProviderOptions {
  /** The resource endpoint, e.g. `https://my-resource.openai.azure.com` (AZURE_OPENAI_ENDPOINT). */
  baseURL: string;
  /** `preview` (default) or `v1` for the v1 API; a dated version for deployment URLs. */
  apiVersion?: string;
}

export const AZURE_DEFAULT_API_VERSION = "preview";

/** What Azure's GPT image deployments take beyond model, prompt, n, size and user. */
const ACCEPTED: Record<Endpoint, readonly Parameter[]> = {
  generation: ["quality", "background", "output_format", "output_compression"],
  edit: ["quality", "background", "output_format", "output_compression"],
};

/** Why a parameter is not sent, where it is not just absent from the API. */
const NOT_TAKEN_BECAUSE: Partial<Record<Parameter, string>> = {
  moderation: "Azure applies the content filter configured on the deployment",
};

/**
 * @example
 * ```ts
 * const azure = createAzureProvider({ apiKey, baseURL: "https://my-resource.openai.azure.com" });
 * await azure.generate({ ...call, model: "my-gpt-image-2-deployment" });
 * ```
 */
export function createAzureProvider(options: AzureProviderOptions): ImageProvider {
  const endpointURL = resourceEndpoint(options.baseURL);
  const apiVersion = options.apiVersion?.trim() || AZURE_DEFAULT_API_VERSION;
  const v1 = apiVersion === "preview" || apiVersion === "v1";
  const timeoutMs = options.timeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS;

  function urlOf(deployment: string, endpoint: Endpoint): string {
    const operation = endpoint === "edit" ? "edits" : "generations";
    const version = encodeURIComponent(v1 ? AZURE_DEFAULT_API_VERSION : apiVersion);
    if (v1) return `${endpointURL}/openai/v1/images/${operation}?api-version=${version}`;
    const name = encodeURIComponent(deployment);
    return `${endpointURL}/openai/deployments/${name}/images/${operation}?api-version=${version}`;
  }

  return {
    name: "azure",
    async generate(call: ProviderCall): Promise<ProviderResult> {
      call.signal.throwIfAborted();
      if (call.outputFormat === "webp") {
        // A different format than asked would change what the client gets.
        throw invalidRequest("Azure OpenAI makes PNG and JPEG images, not WebP.", "output_format");
      }
      const endpoint: Endpoint = call.images.length > 0 ? "edit" : "generation";
      const { parameters, warnings } = parametersOf(call, endpoint);
      const headers = { "api-key": options.apiKey, accept: "application/json" };
      const init =
        endpoint === "edit"
          ? multipartRequestInit(headers, editForm(parameters, call.images, call.mask, "image[]"))
          : jsonRequestInit(headers, parameters);
      const request = {
        provider: "Azure OpenAI",
        dispatcher: options.dispatcher,
        byteBudget: options.byteBudget,
        url: urlOf(call.model, endpoint),
        init,
        timeoutMs: call.timeoutMs ?? timeoutMs,
        maxReplyBytes: options.maxReplyBytes,
        signal: call.signal,
        isContentPolicy: isAzureContentPolicy,
      };
      const bytes = await requestUpstreamPieces(request);
      const result = imagesResultOf(
        request,
        bytes,
        (format) => mimeTypeOfFormat(format ?? call.outputFormat ?? "png") ?? "image/png",
      );
      return { ...result, warnings };
    },
  };
}

/**
 * The resource endpoint without a trailing `/openai/v1` or `/openai` an operator may have copied
 * from a client example: the adapter adds the path itself.
 */
function resourceEndpoint(baseURL: string): string {
  return baseURL.replace(/\/+$/, "").replace(/\/openai(?:\/v1)?$/i, "");
}

/**
 * Azure's refusals: `content_filter` (with `innererror.code: ResponsibleAIPolicyViolation`),
 * `contentFilter` from the image API, and OpenAI's own codes where Azure passes them through.
 */
const CONTENT_POLICY_CODES = new Set([
  "content_filter",
  "contentfilter",
  "content_policy_violation",
  "moderation_blocked",
  "responsibleaipolicyviolation",
]);

export function isAzureContentPolicy(_status: number, upstream: UpstreamErrorBody): boolean {
  return upstream.code !== undefined && CONTENT_POLICY_CODES.has(upstream.code.toLowerCase());
}

function parametersOf(
  call: ProviderCall,
  endpoint: Endpoint,
): { parameters: Record<string, string | number>; warnings: string[] } {
  // On the v1 URL `model` names the deployment; on a deployment URL Azure ignores it.
  const parameters: Record<string, string | number> = {
    model: call.model,
    prompt: call.prompt,
    n: call.count,
  };
  if (call.size !== undefined) parameters.size = call.size;
  if (call.user !== undefined) parameters.user = call.user;
  const settings: Record<Parameter, string | number | undefined> = {
    quality: call.quality,
    style: call.style,
    background: call.background,
    output_format: call.outputFormat,
    output_compression: call.outputCompression,
    moderation: call.moderation,
  };
  const warnings: string[] = [];
  for (const [name, value] of Object.entries(settings) as [Parameter, string | number][]) {
    if (value === undefined) continue;
    if (ACCEPTED[endpoint].includes(name)) {
      parameters[name] = value;
      continue;
    }
    const because = NOT_TAKEN_BECAUSE[name];
    warnings.push(
      `Azure OpenAI takes no '${name}'; '${value}' was not sent${because ? ` (${because})` : ""}.`,
    );
  }
  return { parameters, warnings };
}
