/**
 * Provider instances from the environment: one kind (providers/kinds.ts) at one base URL with
 * one key, under a provider id that catalog models name. The names are public (README): an
 * instance exists when its key is set (or, for servers that need none, its base URL).
 *
 * | id                    | key                                  | base URL (default: the vendor's)           |
 * | --------------------- | ------------------------------------ | ------------------------------------------ |
 * | `openai`              | OPENAI_API_KEY                       | OPENAI_BASE_URL                            |
 * | `google`              | GEMINI_API_KEY                       | GEMINI_BASE_URL                            |
 * | `xai`                 | XAI_API_KEY                          | XAI_BASE_URL                               |
 * | `azure`               | AZURE_OPENAI_API_KEY                 | AZURE_OPENAI_ENDPOINT (required), AZURE_OPENAI_API_VERSION |
 * | `openrouter`          | OPENROUTER_API_KEY                   | OPENROUTER_BASE_URL                        |
 * | `stability`           | STABILITY_API_KEY                    | STABILITY_BASE_URL                         |
 * | `a1111`               | A1111_API_AUTH (optional user:pass)  | A1111_BASE_URL (required)                  |
 * | `ideogram`            | IDEOGRAM_API_KEY                     | IDEOGRAM_BASE_URL                          |
 * | `fal`                 | FAL_KEY                              | FAL_BASE_URL                               |
 * | `bfl`                 | BFL_API_KEY                          | BFL_BASE_URL                               |
 * | `replicate`           | REPLICATE_API_TOKEN                  | REPLICATE_BASE_URL                         |
 * | `comfyui`             | COMFYUI_API_KEY (optional, a proxy's) | COMFYUI_BASE_URL (required)               |
 * | lower-cased `<NAME>`  | OPENAI_COMPATIBLE_<NAME>_API_KEY     | OPENAI_COMPATIBLE_<NAME>_BASE_URL (required), `…_PRESET` |
 *
 * An instance is listed whenever its base URL is known (the vendor's default counts), key or no
 * key: stored credentials (the admin API) of its id then call that URL (credentials/registry.ts),
 * and the environment's key, when set, is one credential more.
 */
import { type InstanceOptions, KIND_INFO, type ProviderKind } from "../providers/kinds.ts";
import { OPENAI_COMPATIBLE_PRESETS, presetQuirks } from "../providers/openai-compatible.ts";

export interface ProviderInstance {
  /** What catalog models name as their `provider`: `openai`, `xai`, `localai`. */
  id: string;
  kind: ProviderKind;
  /** Empty for servers that take none. */
  apiKey: string;
  baseURL: string;
  options: InstanceOptions;
}

/** Provider ids: lower-case letters, digits and dashes, as in `provider/model` names. */
export const PROVIDER_ID_PATTERN = /^[a-z][a-z0-9-]{0,39}$/;

type Env = Record<string, string | undefined>;

const COMPATIBLE = /^OPENAI_COMPATIBLE_([A-Z0-9_]+)_BASE_URL$/;

/** The instances the environment configures, in a fixed order (the built-in kinds first). */
export function instancesFromEnv(env: Env): ProviderInstance[] {
  const instances: ProviderInstance[] = [];
  const add = (
    id: string,
    kind: ProviderKind,
    apiKey: string | undefined,
    baseURL: string | undefined,
    options: InstanceOptions = {},
  ) => {
    const url = baseURL ?? KIND_INFO[kind].defaultBaseURL;
    if (url === undefined) return;
    // Kept without a key too: stored credentials of this id then call its base URL.
    instances.push({ id, kind, apiKey: apiKey ?? "", baseURL: trimSlash(url), options });
  };
  add("openai", "openai", text(env, "OPENAI_API_KEY"), text(env, "OPENAI_BASE_URL"));
  add("google", "google", text(env, "GEMINI_API_KEY"), text(env, "GEMINI_BASE_URL"));
  add("xai", "xai", text(env, "XAI_API_KEY"), text(env, "XAI_BASE_URL"));
  const azureKey = text(env, "AZURE_OPENAI_API_KEY");
  const azureEndpoint = text(env, "AZURE_OPENAI_ENDPOINT");
  if (azureKey && !azureEndpoint) {
    throw new Error("Setting AZURE_OPENAI_API_KEY needs AZURE_OPENAI_ENDPOINT too.");
  }
  add("azure", "azure", azureKey, azureEndpoint, {
    apiVersion: text(env, "AZURE_OPENAI_API_VERSION"),
  });
  add(
    "openrouter",
    "openrouter",
    text(env, "OPENROUTER_API_KEY"),
    text(env, "OPENROUTER_BASE_URL"),
  );
  add("stability", "stability", text(env, "STABILITY_API_KEY"), text(env, "STABILITY_BASE_URL"));
  const a1111Auth = text(env, "A1111_API_AUTH");
  if (a1111Auth !== undefined && !/^[^:]+:.*$/.test(a1111Auth)) {
    throw new Error("Setting A1111_API_AUTH takes user:pass, as the server's --api-auth.");
  }
  add("a1111", "a1111", undefined, text(env, "A1111_BASE_URL"), { basicAuth: a1111Auth });
  add("ideogram", "ideogram", text(env, "IDEOGRAM_API_KEY"), text(env, "IDEOGRAM_BASE_URL"));
  add("fal", "fal", text(env, "FAL_KEY"), text(env, "FAL_BASE_URL"));
  add("bfl", "bfl", text(env, "BFL_API_KEY"), text(env, "BFL_BASE_URL"));
  add("replicate", "replicate", text(env, "REPLICATE_API_TOKEN"), text(env, "REPLICATE_BASE_URL"));
  add("comfyui", "comfyui", text(env, "COMFYUI_API_KEY"), text(env, "COMFYUI_BASE_URL"));

  for (const name of Object.keys(env).sort()) {
    const match = COMPATIBLE.exec(name);
    const base = text(env, name);
    if (!match?.[1] || !base) continue;
    const id = match[1].toLowerCase().replaceAll("_", "-");
    if (!PROVIDER_ID_PATTERN.test(id) || instances.some((instance) => instance.id === id)) {
      throw new Error(`Setting ${name}: '${id}' cannot be a provider id (taken, or not a-z0-9-).`);
    }
    const prefix = `OPENAI_COMPATIBLE_${match[1]}`;
    const preset = text(env, `${prefix}_PRESET`);
    if (preset !== undefined && !presetQuirks(preset)) {
      throw new Error(
        `Setting ${prefix}_PRESET: no preset '${preset}'; one of ${Object.keys(OPENAI_COMPATIBLE_PRESETS).join(", ")}.`,
      );
    }
    add(id, "openai-compatible", text(env, `${prefix}_API_KEY`), base, { preset });
  }
  return instances;
}

function text(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}
