/**
 * Provider kinds: each upstream API the hub speaks, with the module that speaks it. A provider
 * *instance* (credentials/instances.ts) is one kind at one base URL with its own credentials:
 * two OpenAI-compatible servers, or OpenAI direct and an Azure deployment, side by side. The
 * catalog's models name the instance that serves them; this table turns an instance into an
 * `ImageProvider`.
 */
import { createA1111Provider } from "./a1111.ts";
import { createAzureProvider } from "./azure.ts";
import { BFL_DEFAULT_BASE_URL, createBflTaskApi } from "./bfl.ts";
import { createComfyUITaskApi } from "./comfyui.ts";
import { createFalTaskApi, FAL_DEFAULT_BASE_URL } from "./fal.ts";
import { createGoogleProvider, GOOGLE_DEFAULT_BASE_URL } from "./google.ts";
import { createIdeogramTaskApi, IDEOGRAM_DEFAULT_BASE_URL } from "./ideogram.ts";
import { createLocalProvider } from "./local.ts";
import { createOpenAIProvider } from "./openai.ts";
import { createOpenAICompatibleProvider, presetQuirks } from "./openai-compatible.ts";
import { createOpenRouterProvider } from "./openrouter.ts";
import { createReplicateTaskApi, REPLICATE_DEFAULT_BASE_URL } from "./replicate.ts";
import { createStabilityProvider } from "./stability.ts";
import { createTaskProvider, type TaskApi, type TaskJournal } from "./tasks.ts";
import type { HttpProviderOptions, ImageProvider } from "./types.ts";
import { createXaiProvider } from "./xai.ts";

export const PROVIDER_KINDS = [
  "openai",
  "google",
  "local",
  "xai",
  "azure",
  "openrouter",
  "stability",
  "a1111",
  "openai-compatible",
  "ideogram",
  "fal",
  "bfl",
  "replicate",
  "comfyui",
] as const;

export type ProviderKind = (typeof PROVIDER_KINDS)[number];

export function isProviderKind(value: unknown): value is ProviderKind {
  return typeof value === "string" && (PROVIDER_KINDS as readonly string[]).includes(value);
}

/** What an instance may set beyond its key and base URL; each kind reads its own fields. */
export interface InstanceOptions {
  /** Azure: the `api-version` query parameter. */
  apiVersion?: string;
  /** AUTOMATIC1111: `user:pass` for its `--api-auth`. */
  basicAuth?: string;
  /** OpenAI-compatible: a named preset of quirks (providers/openai-compatible.ts). */
  preset?: string;
}

export interface ProviderSettings extends HttpProviderOptions {
  /** The instance's provider id (`localai`), for messages. */
  id: string;
  options: InstanceOptions;
  /** Fetches a result URL through the hub's guarded fetch (task-based kinds fetch at once). */
  fetchResult?: (url: string, signal: AbortSignal) => Promise<Buffer>;
  /** Where task-based kinds write their tasks down (crash recovery). */
  journal?: TaskJournal;
}

interface KindInfo {
  /** For people: the banner, the model list's `providerDisplayName`. */
  displayName: string;
  /** The vendor's base URL; undefined where every instance must give its own. */
  defaultBaseURL: string | undefined;
  /** Whether an instance is usable without an API key (a local server). */
  keyOptional: boolean;
  create(settings: ProviderSettings): ImageProvider;
  /** Task-based kinds: the bare task API, for settling tasks a dead hub left (task recovery). */
  taskApi?(settings: ProviderSettings): TaskApi;
}

/**
 * A task-based kind (submit, then poll): the task engine runs its API, with the hub's guarded
 * fetch for results and its journal for crash recovery.
 */
function taskKind(
  info: Omit<KindInfo, "create" | "taskApi">,
  makeApi: (settings: ProviderSettings) => TaskApi,
): KindInfo {
  return {
    ...info,
    taskApi: makeApi,
    create: (settings) =>
      createTaskProvider(makeApi(settings), {
        providerId: settings.id,
        fetchResult: settings.fetchResult,
        journal: settings.journal,
      }),
  };
}

export const KIND_INFO: Record<ProviderKind, KindInfo> = {
  openai: {
    displayName: "OpenAI",
    defaultBaseURL: "https://api.openai.com/v1",
    keyOptional: false,
    create: createOpenAIProvider,
  },
  google: {
    displayName: "Google",
    defaultBaseURL: GOOGLE_DEFAULT_BASE_URL,
    keyOptional: false,
    create: createGoogleProvider,
  },
  local: {
    displayName: "image-hub",
    defaultBaseURL: undefined,
    keyOptional: true,
    create: () => createLocalProvider(),
  },
  xai: {
    displayName: "xAI",
    defaultBaseURL: "https://api.x.ai/v1",
    keyOptional: false,
    create: createXaiProvider,
  },
  azure: {
    displayName: "Azure OpenAI",
    defaultBaseURL: undefined,
    keyOptional: false,
    create: (settings) =>
      createAzureProvider({ ...settings, apiVersion: settings.options.apiVersion }),
  },
  openrouter: {
    displayName: "OpenRouter",
    defaultBaseURL: "https://openrouter.ai/api/v1",
    keyOptional: false,
    create: createOpenRouterProvider,
  },
  stability: {
    displayName: "Stability AI",
    defaultBaseURL: "https://api.stability.ai",
    keyOptional: false,
    create: createStabilityProvider,
  },
  a1111: {
    displayName: "AUTOMATIC1111",
    defaultBaseURL: undefined,
    keyOptional: true,
    create: (settings) => createA1111Provider({ ...settings, auth: settings.options.basicAuth }),
  },
  ideogram: taskKind(
    { displayName: "Ideogram", defaultBaseURL: IDEOGRAM_DEFAULT_BASE_URL, keyOptional: false },
    createIdeogramTaskApi,
  ),
  bfl: taskKind(
    { displayName: "Black Forest Labs", defaultBaseURL: BFL_DEFAULT_BASE_URL, keyOptional: false },
    createBflTaskApi,
  ),
  replicate: taskKind(
    { displayName: "Replicate", defaultBaseURL: REPLICATE_DEFAULT_BASE_URL, keyOptional: false },
    createReplicateTaskApi,
  ),
  // A team's own GPU box: no key unless a proxy in front of it asks for one.
  comfyui: taskKind(
    { displayName: "ComfyUI", defaultBaseURL: undefined, keyOptional: true },
    createComfyUITaskApi,
  ),
  fal: taskKind(
    { displayName: "fal", defaultBaseURL: FAL_DEFAULT_BASE_URL, keyOptional: false },
    createFalTaskApi,
  ),
  "openai-compatible": {
    displayName: "OpenAI-compatible",
    defaultBaseURL: undefined,
    keyOptional: true,
    // Preset names are checked where they are set (the environment, the admin API).
    create: (settings) =>
      createOpenAICompatibleProvider({
        ...settings,
        name: settings.id,
        quirks: presetQuirks(settings.options.preset),
      }),
  },
};
