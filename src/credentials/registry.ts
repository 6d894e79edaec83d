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
 * Credential health (credentials/health.ts): a 429 cools a credential down for its Retry-After
 * and a 401/403 quarantines it with a growing back-off; either way the call moves on to another
 * credential at once, since a refused call made nothing. When a quarantine ends the credential
 * is tried by one call at a time (first, so it comes back soon), and a success clears it: a
 * provider that works again is used again without an operator. Only an admin's `disabled`
 * keeps a credential off for good. Weight 0 keeps a credential out of the rotation; a model
 * route's fallback can still name it (`pinned`).
 *
 * A provider's model list (`listModels`) is asked of its healthy credentials in turn, the
 * environment's first, under the same health rules; the first list read is the answer.
 *
 * @example
 * ```ts
 * const registry = createProviderRegistry({ db, vault, env: config, timeoutMs: 180_000 });
 * await registry.reload(); // loads the stored credentials; again after every admin change
 * const images = createImageService({ providers: registry.providers, ... });
 * ```
 */
import type { Dispatcher } from "undici";
import { HubError, isHubError, upstreamFailed, upstreamRateLimited } from "../errors.ts";
import type { ProviderName } from "../images/catalog.ts";
import type { ByteBudget } from "../net/byte-budget.ts";
import {
  type InstanceOptions,
  isProviderKind,
  KIND_INFO,
  PROVIDER_KINDS,
  type ProviderKind,
  type ProviderSettings,
} from "../providers/kinds.ts";
import { createLocalProvider } from "../providers/local.ts";
import type { TaskApi, TaskJournal } from "../providers/tasks.ts";
import type { ImageProvider, ProviderCall } from "../providers/types.ts";
import type { Database, ProviderCredentialRecord } from "../storage/db/types.ts";
import { type HealthBoard, localHealthBoard } from "./health-board.ts";
import type { ProviderInstance } from "./instances.ts";
import { maskSecret, type Vault } from "./vault.ts";

/** A provider id that takes credentials: an instance's (`openai`, `xai`, `localai`). */
export type CredentialProvider = string;

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
  /**
   * `cooling_down`: rate limited, skipped until `statusUntil`; `auth_failed`: the upstream
   * refused it (401/403), quarantined until `statusUntil`, then tried again; `disabled`: an
   * admin turned it off; `undecryptable`: stored under another MASTER_KEY.
   */
  status: "active" | "cooling_down" | "auth_failed" | "disabled" | "undecryptable";
  /** Why the status is what it is, for `cooling_down` and `auth_failed`. */
  statusDetail: string | null;
  /** The upstream's words of its last refusal (keys cut out), for `auth_failed`. */
  lastError: string | null;
  /** ms since the epoch: since when it is in this state. */
  statusSince: number | null;
  /** ms since the epoch: when a cool-down ends, or when a quarantined one is tried next. */
  statusUntil: number | null;
}

export interface ProviderRegistryOptions {
  db: Pick<Database, "listCredentials" | "updateCredential">;
  vault: Pick<Vault, "decrypt">;
  /** The instances the environment configures (credentials/instances.ts). */
  instances: readonly ProviderInstance[];
  /** Fetches an upstream's result URL through the guarded fetch (task-based providers). */
  fetchResult?: (url: string, signal: AbortSignal) => Promise<Buffer>;
  /** Where task-based providers write their tasks down (images/task-journal.ts). */
  journal?: TaskJournal;
  /** Upstream time budget for one call, in milliseconds. */
  timeoutMs: number;
  dispatcher?: Dispatcher;
  byteBudget?: ByteBudget;
  /** Largest upstream reply read, in bytes. */
  maxReplyBytes?: number;
  /** In [0, 1); replaces Math.random in the weighted pick (tests). */
  random?: () => number;
  clock?: () => number;
  log?: { warn(details: Record<string, unknown>, message: string): void };
  /** Where credential health is kept: this process (the default) or shared (Redis). */
  health?: HealthBoard;
}

export interface ProviderRegistry {
  /** A provider that picks a credential per call, or undefined when it has none usable. */
  get(provider: ProviderName): ImageProvider | undefined;
  isConfigured(provider: ProviderName): boolean;
  /** Re-reads the stored credentials; call it after each change (and periodically, if wanted). */
  reload(): Promise<void>;
  /** Every credential, the environment's first, masked. */
  list(): CredentialView[];
  /** Brings every credential's health up to date (other instances' findings) before a `list`. */
  syncHealth(): Promise<void>;
  /** A live view of `get` in the shape `createImageService` takes as `providers`. */
  readonly providers: Partial<Record<ProviderName, ImageProvider>>;
  /**
   * A provider that calls through one credential only (a route's fallback names it), or
   * undefined when there is no usable credential with that id.
   */
  pinned(credentialId: string): ImageProvider | undefined;
  /** Forgets a cool-down or refusal (an admin enabled the credential again). */
  resetHealth(credentialId: string): void;
  /**
   * Tries one credential with a call that costs nothing (its provider's model list), even one
   * cooling down or refused, since an admin asks to know whether it works now: an answer clears
   * a refusal, a 401 quarantines it as any call would. `tested: false` when the provider has no
   * such call; undefined when there is no credential with that id.
   */
  check(
    credentialId: string,
    signal: AbortSignal,
  ): Promise<{ tested: boolean; models?: number } | undefined>;
  /**
   * Whether a stored credential of `provider` could be used: an instance the environment
   * configures, or a kind of that name (whose vendor URL, or the credential's `base_url`, it
   * calls). Undefined when it can; why not, otherwise.
   */
  refusesCredential(provider: string, hasBaseUrl: boolean, kind?: string): string | undefined;
  /** A task-based provider's bare task API (task recovery), or undefined for any other. */
  taskApi(provider: string): TaskApi | undefined;
  /** The kind of API a provider id speaks, or undefined when the hub has no such provider. */
  kindOf(provider: string): ProviderKind | undefined;
}

/** A credential check is an admin waiting at a button: an answer in seconds or none. */
const CHECK_TIMEOUT_MS = 15_000;

type ListOptions = Parameters<NonNullable<ImageProvider["listModels"]>>[0];

interface PoolEntry {
  id: string;
  provider: CredentialProvider;
  kind: ProviderKind;
  /** What the client was made from, for the task API of task-based kinds. */
  settings: ProviderSettings;
  weight: number;
  client: ImageProvider;
  source: CredentialView["source"];
}

interface State {
  /** Entries in the weighted rotation (weight > 0), by provider id. */
  pools: Map<CredentialProvider, PoolEntry[]>;
  /** Every usable entry by id, weight 0 included. */
  entries: Map<string, PoolEntry>;
  views: CredentialView[];
}

export function createProviderRegistry(options: ProviderRegistryOptions): ProviderRegistry {
  const random = options.random ?? Math.random;
  const clock = options.clock ?? Date.now;
  const local = createLocalProvider();
  // Kept across reloads: a reload must not forget that a key was refused a second ago.
  const health = options.health ?? localHealthBoard(clock);
  // Warn once per stored envelope, not on every periodic reload.
  const warned = new Set<string>();
  let state = build([]);
  let generation = 0;

  function settingsFor(
    id: string,
    apiKey: string,
    baseURL: string,
    instanceOptions: InstanceOptions,
  ): ProviderSettings {
    return {
      id,
      apiKey,
      baseURL,
      options: instanceOptions,
      fetchResult: options.fetchResult,
      journal: options.journal,
      dispatcher: options.dispatcher,
      byteBudget: options.byteBudget,
      timeoutMs: options.timeoutMs,
      maxReplyBytes: options.maxReplyBytes,
    };
  }

  function clientOf(kind: ProviderKind, settings: ProviderSettings) {
    return { client: KIND_INFO[kind].create(settings), settings };
  }

  /**
   * What a stored credential adds keys to: the environment's instance of that id, the kind of
   * that name at its vendor's URL (a stored `xai` key needs no XAI_API_KEY), or, for a
   * credential that names its own kind, an instance of its own (an admin's server).
   */
  function instanceOf(
    provider: string,
    record?: Pick<ProviderCredentialRecord, "kind" | "options" | "baseUrl">,
  ): Omit<ProviderInstance, "apiKey"> | undefined {
    const configured = options.instances.find((instance) => instance.id === provider);
    if (configured) return configured;
    if (record?.kind && isProviderKind(record.kind) && record.kind !== "local") {
      const instanceOptions: InstanceOptions = {
        apiVersion: record.options?.api_version,
        preset: record.options?.preset,
      };
      return {
        id: provider,
        kind: record.kind,
        baseURL: record.baseUrl ?? KIND_INFO[record.kind].defaultBaseURL ?? "",
        options: instanceOptions,
      };
    }
    if (!isProviderKind(provider) || provider === "local") return undefined;
    const baseURL = KIND_INFO[provider].defaultBaseURL;
    return { id: provider, kind: provider, baseURL: baseURL ?? "", options: {} };
  }

  function build(records: readonly ProviderCredentialRecord[]): State {
    const pools: State["pools"] = new Map();
    const entries = new Map<string, PoolEntry>();
    const views: CredentialView[] = [];
    const add = (entry: PoolEntry) => {
      entries.set(entry.id, entry);
      if (entry.weight > 0)
        pools.set(entry.provider, [...(pools.get(entry.provider) ?? []), entry]);
    };
    for (const instance of options.instances) {
      if (!instance.apiKey && !KIND_INFO[instance.kind].keyOptional) continue;
      const id = `env:${instance.id}`;
      add({
        id,
        provider: instance.id,
        kind: instance.kind,
        weight: 1,
        ...clientOf(
          instance.kind,
          settingsFor(instance.id, instance.apiKey, instance.baseURL, instance.options),
        ),
        source: "environment",
      });
      views.push({
        id,
        provider: instance.id,
        name: "environment",
        key: instance.apiKey ? maskSecret(instance.apiKey) : "(none)",
        baseUrl: instance.baseURL,
        weight: 1,
        createdAt: null,
        disabled: false,
        source: "environment",
        status: "active",
        statusDetail: null,
        lastError: null,
        statusSince: null,
        statusUntil: null,
      });
    }
    for (const record of records) {
      const provider = record.provider;
      const instance = instanceOf(provider, record);
      if (!instance) {
        warnOnce(record, { credentialId: record.id, provider }, "credential of unknown provider");
        continue;
      }
      const disabled = record.disabledAt !== null;
      let status: CredentialView["status"] = disabled ? "disabled" : "active";
      if (!disabled) {
        const apiKey = open(record);
        if (apiKey === undefined) {
          status = "undecryptable";
        } else {
          add({
            id: record.id,
            provider,
            kind: instance.kind,
            weight: record.weight,
            // AUTOMATIC1111's "key" is its --api-auth user:pass (providers/a1111.ts).
            ...clientOf(
              instance.kind,
              settingsFor(provider, apiKey, record.baseUrl ?? instance.baseURL, instance.options),
            ),
            source: "database",
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
        statusDetail: null,
        lastError: null,
        statusSince: null,
        statusUntil: null,
      });
    }
    return { pools, entries, views };
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

  /** Calls through `entry`; a 429 cools it down and a 401/403 quarantines it. */
  function callThrough(entry: PoolEntry, call: ProviderCall, endProbe?: () => void) {
    return through(entry, (client) => client.generate(call), endProbe);
  }

  /** Asks `entry` for its model list, under the same health rules as a call. */
  function listThrough(entry: PoolEntry, listOptions: ListOptions, endProbe?: () => void) {
    return through(
      entry,
      (client) => {
        if (!client.listModels) throw new Error(`${entry.provider} lists no models.`);
        return client.listModels(listOptions);
      },
      endProbe,
    );
  }

  /**
   * Whether `entry` may take a call now, and the probe it holds when its quarantine has just
   * ended (one call at a time tries it, across instances when health is shared): `false` when
   * it is blocked, or its probe is another call's.
   */
  async function admit(entry: PoolEntry): Promise<{ endProbe?: () => void } | false> {
    const usability = health.usability(entry.id);
    if (usability === "healthy") return {};
    if (usability === "blocked") return false;
    const endProbe = await health.tryBeginProbe(entry.id);
    return endProbe ? { endProbe } : false;
  }

  /**
   * Runs `work` on the entry's client and keeps its health: a success clears a quarantine, a
   * 429 cools it down, a 401/403 quarantines it. A credential whose quarantine has ended is
   * tried by one call at a time (the probe).
   */
  async function through<T>(
    entry: PoolEntry,
    work: (client: ImageProvider) => Promise<T>,
    endProbe?: () => void,
  ) {
    try {
      const result = await work(entry.client);
      if (endProbe)
        options.log?.warn({ credentialId: entry.id }, "provider credential accepted again");
      health.succeeded(entry.id);
      return result;
    } catch (error) {
      if (isHubError(error) && error.upstreamStatus === 429) {
        health.coolDown(entry.id, error.retryAfterSeconds);
      }
      if (isHubError(error) && isRefusal(error.upstreamStatus)) refused(entry, error);
      throw error;
    } finally {
      endProbe?.();
    }
  }

  function refused(entry: PoolEntry, error: HubError) {
    const status = error.upstreamStatus ?? 401;
    const logIt = (waitMs: number) =>
      options.log?.warn(
        {
          credentialId: entry.id,
          provider: entry.provider,
          upstreamStatus: status,
          nextTryInSeconds: Math.round(waitMs / 1000),
        },
        "provider credential quarantined: the upstream refused it; it is tried again when the wait ends",
      );
    const waitMs = health.refused(entry.id, status, upstreamWords(error));
    if (typeof waitMs === "number") logIt(waitMs);
    else waitMs.then(logIt, () => {});
  }

  /**
   * Why no credential of `provider` can take a call now: all cooling down (a 429 the client
   * may retry after the soonest cool-down ends) or all refused.
   */
  function noCredentialError(provider: CredentialProvider, pool: readonly PoolEntry[]): HubError {
    const coolDowns = pool
      .map((entry) => health.get(entry.id))
      .filter((known) => known?.state === "cooling_down")
      .map((known) => known?.until ?? 0);
    if (coolDowns.length > 0) {
      const seconds = Math.max(1, Math.ceil((Math.min(...coolDowns) - clock()) / 1000));
      return upstreamRateLimited(
        `Every ${provider} credential of this hub is rate limited by the upstream just now.`,
        seconds,
      );
    }
    if (pool.length > 0) {
      const nextTry = Math.min(...pool.map((entry) => health.get(entry.id)?.until ?? clock()));
      const seconds = Math.max(1, Math.ceil((nextTry - clock()) / 1000));
      return upstreamFailed(
        `The upstream refused every ${provider} credential of this hub; the next is tried again in ${seconds} s.`,
        { code: "upstream_auth_failed" },
      );
    }
    // Only when a reload removed the last credential between planning and calling.
    return new HubError(`The ${provider} provider has no credentials on this hub any more.`, {
      status: 503,
      type: "server_error",
      code: "provider_not_configured",
    });
  }

  /**
   * One provider per name for the registry's life; the pool it draws from is read per call. A
   * credential that answers 429 or 401 made nothing, so the call moves on to the next healthy
   * one at once; the last such error is thrown when none is left.
   */
  function dispatcher(provider: CredentialProvider): ImageProvider {
    return {
      name: provider,
      async generate(call: ProviderCall) {
        const tried = new Set<string>();
        let lastError: unknown;
        for (;;) {
          const pool = state.pools.get(provider) ?? [];
          // What other instances saw of these credentials, up to their very last call.
          await health.sync(pool.map((entry) => entry.id));
          const fresh = pool.filter((entry) => !tried.has(entry.id));
          // A credential whose quarantine has ended goes first, so it comes back soon; when
          // another call holds its probe, it is skipped like a blocked one.
          let entry = fresh.find((candidate) => health.usability(candidate.id) === "probe");
          let endProbe: (() => void) | undefined;
          if (entry) {
            endProbe = await health.tryBeginProbe(entry.id);
            if (!endProbe) {
              tried.add(entry.id);
              entry = undefined;
            }
          }
          entry ??= pick(fresh.filter((candidate) => health.usability(candidate.id) === "healthy"));
          if (!entry) throw lastError ?? noCredentialError(provider, pool);
          tried.add(entry.id);
          try {
            return await callThrough(entry, call, endProbe);
          } catch (error) {
            const moveOn =
              isHubError(error) &&
              (error.upstreamStatus === 429 || isRefusal(error.upstreamStatus));
            if (!moveOn || call.signal.aborted) throw error;
            lastError = error;
          }
        }
      },
      /**
       * The first list a healthy credential gives, asked in order (the environment's first):
       * any failure moves on to the next, since a list is the same whoever asks for it.
       */
      async listModels(listOptions: ListOptions) {
        const pool = state.pools.get(provider) ?? [];
        await health.sync(pool.map((entry) => entry.id));
        let lastError: unknown;
        for (const entry of pool) {
          if (!entry.client.listModels) continue;
          const admitted = await admit(entry);
          if (!admitted) continue;
          try {
            return await listThrough(entry, listOptions, admitted.endProbe);
          } catch (error) {
            if (listOptions.signal.aborted) throw error;
            lastError = error;
          }
        }
        throw lastError ?? noCredentialError(provider, pool);
      },
    };
  }

  function pinned(credentialId: string): ImageProvider | undefined {
    const entry = state.entries.get(credentialId);
    if (!entry) return undefined;
    const healthyCurrent = async () => {
      const current = state.entries.get(credentialId) ?? entry;
      await health.sync([current.id]);
      const admitted = await admit(current);
      if (!admitted) throw noCredentialError(current.provider, [current]);
      return { current, endProbe: admitted.endProbe };
    };
    const provider: ImageProvider = {
      name: entry.provider,
      async generate(call: ProviderCall) {
        const { current, endProbe } = await healthyCurrent();
        return callThrough(current, call, endProbe);
      },
    };
    if (entry.client.listModels) {
      provider.listModels = async (listOptions) => {
        const { current, endProbe } = await healthyCurrent();
        return listThrough(current, listOptions, endProbe);
      };
    }
    return provider;
  }

  function withHealth(view: CredentialView): CredentialView {
    const known = view.status === "active" ? health.get(view.id) : undefined;
    if (!known) return { ...view };
    return {
      ...view,
      status: known.state,
      statusDetail: known.detail,
      lastError: known.lastError,
      statusSince: known.since,
      statusUntil: known.until,
    };
  }

  // One dispatcher per provider id for the registry's life; each reads its pool per call.
  const dispatchers = new Map<CredentialProvider, ImageProvider>();
  const isConfigured = (provider: ProviderName): boolean =>
    provider === "local" || (state.pools.get(provider)?.length ?? 0) > 0;
  const get = (provider: ProviderName): ImageProvider | undefined => {
    if (provider === "local") return local;
    if (!isConfigured(provider)) return undefined;
    let found = dispatchers.get(provider);
    if (!found) {
      found = dispatcher(provider);
      dispatchers.set(provider, found);
    }
    return found;
  };
  /** Every provider id with a usable credential now, `local` first. */
  const configuredIds = () => ["local", ...state.pools.keys()];

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
    list: () => state.views.map(withHealth),
    syncHealth: () => health.sync(state.views.map((view) => view.id)),
    pinned,
    async check(credentialId, signal) {
      const entry = state.entries.get(credentialId);
      if (!entry) return undefined;
      if (!entry.client.listModels) return { tested: false };
      await health.sync([entry.id]);
      const models = await listThrough(entry, { signal, timeoutMs: CHECK_TIMEOUT_MS });
      return { tested: true, models: models.length };
    },
    resetHealth: (credentialId) => {
      health.reset(credentialId);
    },
    kindOf(provider) {
      if (provider === "local") return "local";
      for (const entry of state.entries.values()) {
        if (entry.provider === provider) return entry.kind;
      }
      return instanceOf(provider)?.kind;
    },
    taskApi(provider) {
      for (const entry of state.entries.values()) {
        const make = KIND_INFO[entry.kind].taskApi;
        if (entry.provider === provider && make) return make(entry.settings);
      }
      return undefined;
    },
    refusesCredential(provider, hasBaseUrl, kind) {
      const instance = instanceOf(
        provider,
        kind ? { kind, options: null, baseUrl: null } : undefined,
      );
      if (!instance) {
        const known = options.instances.map((configured) => configured.id);
        return `no provider '${provider}' on this hub: one of ${[...new Set([...known, ...PROVIDER_KINDS])].filter((id) => id !== "local" && id !== "openai-compatible").join(", ")}`;
      }
      if (kind && instance.kind !== kind) {
        return `'${provider}' is a ${instance.kind} provider here, not ${kind}`;
      }
      if (!instance.baseURL && !hasBaseUrl) {
        return `a '${provider}' credential needs a base_url (the provider has no default one)`;
      }
      return undefined;
    },
    // A live record over the provider ids (the shape createImageService and model-sync take):
    // ids come and go as credentials are added and removed, so it is read through at each use.
    providers: new Proxy({} as Partial<Record<ProviderName, ImageProvider>>, {
      get: (_target, name) => (typeof name === "string" ? get(name) : undefined),
      has: (_target, name) => typeof name === "string" && isConfigured(name),
      ownKeys: () => configuredIds(),
      getOwnPropertyDescriptor: (_target, name) =>
        typeof name === "string" && isConfigured(name)
          ? { enumerable: true, configurable: true, value: get(name) }
          : undefined,
    }),
  };
}

/** 401 and 403: the upstream refused the key (Google's "API key not valid" arrives as 401). */
function isRefusal(status: number | undefined): boolean {
  return status === 401 || status === 403;
}

/** The upstream's own message of a refusal, already cut of keys (providers/upstream.ts). */
function upstreamWords(error: HubError): string | null {
  const cause = error.cause as { upstream?: { message?: unknown } } | undefined;
  const message = cause?.upstream?.message;
  return typeof message === "string" && message.length > 0 ? message.slice(0, 300) : null;
}
