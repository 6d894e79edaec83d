/**
 * The providers the hub calls, built from the credentials it has: for OpenAI and Google, the
 * one from the environment (OPENAI_API_KEY, GEMINI_API_KEY) and every enabled one stored through
 * the admin API. `get(provider)` gives one `ImageProvider` that picks a credential by weight for
 * each call, so several keys share the load (and the rate limits) in the proportion asked.
 *
 * Stored secrets are decrypted once per load, kept only inside the provider made from them, and
 * never logged; one that cannot be decrypted (MASTER_KEY changed) is skipped with a warning
 * naming its id.
 *
 * @example
 * ```ts
 * const registry = createProviderRegistry({ db, vault, env: config, timeoutMs: 180_000 });
 * await registry.reload(); // loads the stored credentials; again after every admin change
 * const images = createImageService({ providers: registry.providers, ... });
 * ```
 */
import type { Dispatcher } from "undici";
import { HubError } from "../errors.ts";
import type { ProviderName } from "../images/catalog.ts";
import type { ByteBudget } from "../net/byte-budget.ts";
import { createGoogleProvider } from "../providers/google.ts";
import { createLocalProvider } from "../providers/local.ts";
import { createOpenAIProvider } from "../providers/openai.ts";
import type { HttpProviderOptions, ImageProvider, ProviderCall } from "../providers/types.ts";
import type { Database, ProviderCredentialRecord } from "../storage/db/types.ts";
import { maskSecret, type Vault } from "./vault.ts";

/** The providers that take credentials (`local` needs none). */
export type CredentialProvider = "openai" | "google";
export const CREDENTIAL_PROVIDERS: readonly CredentialProvider[] = ["openai", "google"];

/** A credential as people may see it: never its secret. */
export interface CredentialView {
  /** `env:openai`, `env:google` for the environment's; the database id otherwise. */
  id: string;
  provider: CredentialProvider;
  name: string;
  /** The masked key, e.g. `sk-…ab12`. */
  key: string;
  /** The base URL calls go to; null for the provider's configured one. */
  baseUrl: string | null;
  weight: number;
  /** ms since the epoch; null for the environment's. */
  createdAt: number | null;
  disabled: boolean;
  source: "environment" | "database";
  /** `undecryptable`: stored under another MASTER_KEY, so never used. */
  status: "active" | "disabled" | "undecryptable";
}

export interface ProviderRegistryOptions {
  db: Pick<Database, "listCredentials">;
  vault: Pick<Vault, "decrypt">;
  /** The environment's credentials; `Config` fits as it is. */
  env: {
    openai: { apiKey: string | undefined; baseURL: string };
    gemini: { apiKey: string | undefined; baseURL: string };
  };
  /** Upstream time budget for one call, in milliseconds. */
  timeoutMs: number;
  dispatcher?: Dispatcher;
  byteBudget?: ByteBudget;
  /** In [0, 1); replaces Math.random in the weighted pick (tests). */
  random?: () => number;
  log?: { warn(details: Record<string, unknown>, message: string): void };
}

export interface ProviderRegistry {
  /** A provider that picks a credential per call, or undefined when it has none usable. */
  get(provider: ProviderName): ImageProvider | undefined;
  isConfigured(provider: ProviderName): boolean;
  /** Re-reads the stored credentials; call it after each change (and periodically, if wanted). */
  reload(): Promise<void>;
  /** Every credential, the environment's first, masked. */
  list(): CredentialView[];
  /** A live view of `get` in the shape `createImageService` takes as `providers`. */
  readonly providers: Partial<Record<ProviderName, ImageProvider>>;
}

interface PoolEntry {
  id: string;
  weight: number;
  provider: ImageProvider;
}

interface State {
  pools: Record<CredentialProvider, PoolEntry[]>;
  views: CredentialView[];
}

const ENV_SETTING: Record<CredentialProvider, "openai" | "gemini"> = {
  openai: "openai",
  google: "gemini",
};

export function createProviderRegistry(options: ProviderRegistryOptions): ProviderRegistry {
  const random = options.random ?? Math.random;
  const local = createLocalProvider();
  // Warn once per stored envelope, not on every periodic reload.
  const warned = new Set<string>();
  let state = build([]);
  let generation = 0;

  function providerFor(
    provider: CredentialProvider,
    apiKey: string,
    baseURL: string | null,
  ): ImageProvider {
    const settings: HttpProviderOptions = {
      apiKey,
      baseURL: baseURL ?? options.env[ENV_SETTING[provider]].baseURL,
      dispatcher: options.dispatcher,
      byteBudget: options.byteBudget,
      timeoutMs: options.timeoutMs,
    };
    return provider === "openai" ? createOpenAIProvider(settings) : createGoogleProvider(settings);
  }

  function build(records: readonly ProviderCredentialRecord[]): State {
    const pools: State["pools"] = { openai: [], google: [] };
    const views: CredentialView[] = [];
    for (const provider of CREDENTIAL_PROVIDERS) {
      const env = options.env[ENV_SETTING[provider]];
      if (!env.apiKey) continue;
      const id = `env:${provider}`;
      pools[provider].push({ id, weight: 1, provider: providerFor(provider, env.apiKey, null) });
      views.push({
        id,
        provider,
        name: "environment",
        key: maskSecret(env.apiKey),
        baseUrl: env.baseURL,
        weight: 1,
        createdAt: null,
        disabled: false,
        source: "environment",
        status: "active",
      });
    }
    for (const record of records) {
      const provider = record.provider;
      if (!isCredentialProvider(provider)) {
        warnOnce(record, { credentialId: record.id, provider }, "credential of unknown provider");
        continue;
      }
      const disabled = record.disabledAt !== null;
      let status: CredentialView["status"] = disabled ? "disabled" : "active";
      if (!disabled) {
        const apiKey = open(record);
        if (apiKey === undefined) {
          status = "undecryptable";
        } else if (record.weight > 0) {
          pools[provider].push({
            id: record.id,
            weight: record.weight,
            provider: providerFor(provider, apiKey, record.baseUrl),
          });
        }
      }
      views.push({
        id: record.id,
        provider,
        name: record.name,
        key: record.keyHint,
        baseUrl: record.baseUrl,
        weight: record.weight,
        createdAt: record.createdAt,
        disabled,
        source: "database",
        status,
      });
    }
    return { pools, views };
  }

  function open(record: ProviderCredentialRecord): string | undefined {
    try {
      return options.vault.decrypt(record.encryptedKey, record.id);
    } catch (error) {
      warnOnce(
        record,
        // The message only: the error's cause is OpenSSL's, and nothing of the secret.
        { credentialId: record.id, provider: record.provider, reason: (error as Error).message },
        "stored provider credential skipped: it cannot be decrypted with this MASTER_KEY",
      );
      return undefined;
    }
  }

  function warnOnce(
    record: ProviderCredentialRecord,
    details: Record<string, unknown>,
    message: string,
  ) {
    const seen = `${record.id}:${record.encryptedKey}`;
    if (warned.has(seen)) return;
    warned.add(seen);
    options.log?.warn(details, message);
  }

  function pick(pool: readonly PoolEntry[]): PoolEntry | undefined {
    const total = pool.reduce((sum, entry) => sum + entry.weight, 0);
    let point = random() * total;
    for (const entry of pool) {
      point -= entry.weight;
      if (point < 0) return entry;
    }
    return pool.at(-1);
  }

  /** One provider per name for the registry's life; the pool it draws from is read per call. */
  function dispatcher(provider: CredentialProvider): ImageProvider {
    return {
      name: provider,
      generate(call: ProviderCall) {
        const entry = pick(state.pools[provider]);
        if (!entry) {
          // Only when a reload removed the last credential between planning and calling.
          return Promise.reject(
            new HubError(`The ${provider} provider has no credentials on this hub any more.`, {
              status: 503,
              type: "server_error",
              code: "provider_not_configured",
            }),
          );
        }
        return entry.provider.generate(call);
      },
    };
  }

  const dispatchers: Record<CredentialProvider, ImageProvider> = {
    openai: dispatcher("openai"),
    google: dispatcher("google"),
  };

  const isConfigured = (provider: ProviderName): boolean =>
    provider === "local" || state.pools[provider].length > 0;
  const get = (provider: ProviderName): ImageProvider | undefined => {
    if (provider === "local") return local;
    return isConfigured(provider) ? dispatchers[provider] : undefined;
  };

  return {
    get,
    isConfigured,
    async reload() {
      const mine = ++generation;
      const records = await options.db.listCredentials();
      const next = build(records);
      // Overlapping reloads: the one started last wins, whichever finishes last.
      if (mine === generation) state = next;
    },
    list: () => state.views.map((view) => ({ ...view })),
    providers: {
      get openai() {
        return get("openai");
      },
      get google() {
        return get("google");
      },
      get local() {
        return get("local");
      },
    },
  };
}

export function isCredentialProvider(value: string): value is CredentialProvider {
  return (CREDENTIAL_PROVIDERS as readonly string[]).includes(value);
}
