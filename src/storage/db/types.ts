/**
 * The database seam. SQLite (node:sqlite) is the default; PostgreSQL implements the same
 * interface with the same migrations (migrations.ts). Methods are async so both backends fit.
 *
 * Money is kept in whole micro-dollars (1 USD = 1,000,000), never in floating point, so that
 * balances and ledgers add up exactly. The HTTP layer converts to USD.
 */

export type KeyRole = "admin" | "client";

export interface ApiKeyRecord {
  /** Short public id, part of the key itself, used to look the key up. */
  id: string;
  name: string;
  role: KeyRole;
  /** SHA-256 of the key's secret part, hex. The secret itself is never stored. */
  secretHash: string;
  /** Catalog model ids this key may use; null for all. */
  models: string[] | null;
  /** Requests per minute; null for no limit. */
  rpm: number | null;
  /** Images per minute; null for no limit. */
  ipm: number | null;
  /** Credit left in micro-USD; null for unlimited. Never below zero. */
  balanceMicros: number | null;
  createdAt: number;
  revokedAt: number | null;
  lastUsedAt: number | null;
}

export type KeyChanges = Partial<Pick<ApiKeyRecord, "name" | "models" | "rpm" | "ipm">>;

export type UsageStatus = "succeeded" | "partial" | "failed";

/** One durable record per image request: what was asked, what was delivered, what it cost. */
export interface UsageRecord {
  id: string;
  keyId: string;
  /** The catalog id of the model that served the request. */
  model: string;
  /**
   * The model the client named, as the catalog id, when another served it (a retired model's
   * successor); null when the model named is the one that served.
   */
  requestedModel: string | null;
  /**
   * The application that called, as it named itself (AIGNE clients send their DID in
   * `x-aigne-hub-client-did`); null when it did not say. Keys say who pays; this says which app.
   */
  app: string | null;
  provider: string;
  imagesRequested: number;
  imagesDelivered: number;
  size: string | null;
  quality: string | null;
  responseFormat: string;
  status: UsageStatus;
  errorCode: string | null;
  latencyMs: number;
  upstreamLatencyMs: number | null;
  /** What the key was charged, micro-USD. */
  costMicros: number;
  inputTokens: number | null;
  outputTokens: number | null;
  createdAt: number;
}

export interface Reservation {
  id: string;
  keyId: string;
  amountMicros: number;
  createdAt: number;
  /** The hub instance that made it (its heartbeat tells whether it still may settle it). */
  instanceId?: string;
  /**
   * What the usage row of the request says should the request be lost (its hub killed): the
   * record, less what only its end can tell. Written as a failed row at no cost on release.
   */
  request?: LostRequest;
}

/** The usage record a request would leave if it never ended. */
export type LostRequest = Pick<
  UsageRecord,
  | "model"
  | "requestedModel"
  | "app"
  | "provider"
  | "imagesRequested"
  | "size"
  | "quality"
  | "responseFormat"
>;

export interface UsageFilter {
  keyId?: string;
  /** Matches the model that served and the model the client named (`requestedModel`). */
  model?: string;
  /** The calling application (`app`), exactly. */
  app?: string;
  status?: UsageStatus;
  /** Inclusive lower bound, ms since the epoch. */
  from?: number;
  /** Exclusive upper bound, ms since the epoch. */
  to?: number;
}

export interface UsageTotal {
  /** `YYYY-MM-DD` (UTC) for totals per day; the id of the serving model for totals per model. */
  group: string;
  requests: number;
  imagesRequested: number;
  imagesDelivered: number;
  costMicros: number;
}

/** A price per image for one model, size and quality; `*` matches any size or quality. */
export interface ImagePrice {
  model: string;
  size: string;
  quality: string;
  microsPerImage: number;
  /** Where the figure came from: a provider's price page, or "admin". */
  source: string;
  updatedAt: number;
}

/** Token prices for models billed by token (GPT image), USD per million tokens. */
export interface TokenPrice {
  model: string;
  textInputPerMillion: number;
  imageInputPerMillion: number;
  outputPerMillion: number;
  source: string;
  updatedAt: number;
}

/** A provider credential added through the admin API; the secret is stored encrypted. */
export interface ProviderCredentialRecord {
  id: string;
  provider: string;
  name: string;
  /** AES-256-GCM envelope of the API key (see providers/credentials). */
  encryptedKey: string;
  /** The last characters of the key, for people to tell keys apart. */
  keyHint: string;
  baseUrl: string | null;
  weight: number;
  createdAt: number;
  disabledAt: number | null;
  /**
   * The kind of API of a provider the environment does not configure (an admin's own
   * OpenAI-compatible server, say); null when the provider id says it.
   */
  kind: string | null;
  /** That instance's settings (`api_version`, `preset`); null for none. */
  options: Record<string, string> | null;
}

/** An image the hub hosts, as the gallery shows it, until its URL expires. */
export interface HostedImageRecord {
  /** Its name in the blob store (`<id>.png`), which its signed URL names too. */
  name: string;
  keyId: string;
  recordId: string;
  model: string;
  size: string;
  prompt: string;
  /** Its share of the request's cost, micro-USD. */
  costMicros: number;
  mimeType: string;
  createdAt: number;
  expiresAt: number;
}

export interface HostedImageFilter {
  keyId?: string;
  model?: string;
  /** Only images whose URL still works at this time, ms. */
  liveAt: number;
  /** Older than this (ms), for the next page. */
  before?: number;
  limit: number;
}

/** A task-based provider's task in flight, and the request it belongs to. */
export interface UpstreamTaskRecord {
  provider: string;
  taskId: string;
  /** The request's reservation (its usage record's id). */
  reservationId: string;
  keyId: string;
  /** The catalog id of the model that was called, and what it was asked for (for the price). */
  model: string;
  size: string | null;
  quality: string | null;
  images: number;
  /** What polling and cancelling the task need (the adapter's `SubmittedTask.state`). */
  state: Record<string, string>;
  createdAt: number;
}

/** One step of a model's fallback list: another model, optionally on one named credential. */
export interface FallbackTarget {
  /** A catalog model id. */
  model: string;
  /** A provider credential id (`env:openai` or a stored one); null for the provider's pool. */
  credentialId: string | null;
}

/** How calls to one model are routed, as an admin configured it (images/routes.ts). */
export interface ModelRouteRecord {
  /** The catalog model id. */
  model: string;
  /** Tried in order when the model's own calls fail in a way that allows it. */
  fallbacks: FallbackTarget[];
  /** Time budget of the model's upstream calls, ms; null for the default. */
  timeoutMs: number | null;
  /** Retry and fall back even after failures that may have produced a billable image. */
  retryBillable: boolean;
  updatedAt: number;
}

/** A model an admin defined or changed (images/catalog merges these over the built-in ones). */
export interface CatalogModelRecord {
  /** The model id, lower case. */
  id: string;
  /** JSON text of the admin's fields; storage neither reads nor checks it. */
  definition: string;
  /** true: a built-in model the admin deleted (hidden until defined anew). */
  hidden: boolean;
  updatedAt: number;
}

export interface Database {
  readonly kind: "sqlite" | "postgres";

  // API keys
  createKey(record: ApiKeyRecord): Promise<void>;
  findKey(id: string): Promise<ApiKeyRecord | undefined>;
  listKeys(): Promise<ApiKeyRecord[]>;
  countActiveKeys(role: KeyRole): Promise<number>;
  updateKey(id: string, changes: KeyChanges): Promise<ApiKeyRecord | undefined>;
  /** Replaces the secret (rotation); false when the key is unknown or revoked. */
  replaceKeySecret(id: string, secretHash: string): Promise<boolean>;
  /** False when the key is unknown or already revoked. */
  revokeKey(id: string, at: number): Promise<boolean>;
  /** Sets the balance (null for unlimited); undefined when the key is unknown. */
  setBalance(id: string, balanceMicros: number | null): Promise<ApiKeyRecord | undefined>;
  /**
   * Adds credit (negative to take some back, never below zero); a key with an unlimited
   * balance starts from zero. Undefined when the key is unknown.
   */
  addCredit(id: string, amountMicros: number): Promise<ApiKeyRecord | undefined>;
  /** Writes last-used times in one batch (the hub buffers them; no write per request). */
  touchKeys(lastUsed: ReadonlyMap<string, number>): Promise<void>;

  // Reservation accounting
  /**
   * Takes `amountMicros` from the key's balance and records the reservation, atomically;
   * false (and nothing changed) when the balance is too small. Keys with an unlimited balance
   * always succeed.
   */
  reserve(reservation: Reservation): Promise<boolean>;
  /**
   * Raises the open reservation `reservationId` to `toMicros`, taking the difference from its
   * key's balance, atomically; false (and nothing changed) when the balance is too small or the
   * reservation is no longer open (settled, or released as lost). True, taking nothing, when it
   * already holds that much. Keys with an unlimited balance always succeed. Settling and
   * releasing then give back the raised amount, as they would any reservation's.
   */
  topUpReservation(reservationId: string, toMicros: number): Promise<boolean>;
  /**
   * In one transaction: deletes the reservation, gives back what it held beyond
   * `usage.costMicros`, and writes the usage record. A reservation already settled or released
   * gives nothing back (the record is still written), so settling twice cannot refund twice.
   */
  settle(reservationId: string, usage: UsageRecord): Promise<void>;
  /**
   * Releases every reservation created before `before` (a crash left them open): gives their
   * amounts back and returns how many there were.
   */
  releaseReservations(before: number, now?: number): Promise<number>;
  /** Registers a live hub instance, or says it is still live (its heartbeat). */
  heartbeat(instanceId: string, startedAt: number, now: number): Promise<void>;
  /** A hub instance leaves (a clean shutdown: its requests have settled). */
  forgetInstance(instanceId: string): Promise<void>;
  /**
   * Hub instances whose heartbeat is older than `deadBefore` are dead: forgets them and
   * releases the reservations they made (each writes its request's failed row at no cost), in
   * one transaction, so two hubs doing this at once release each once.
   */
  releaseDeadInstances(
    deadBefore: number,
    now: number,
  ): Promise<{ instances: string[]; released: number }>;
  /**
   * Registers this process as a live hub for as long as the database stays open (the first
   * call) and, when no other hub is live, releases the open reservations created before
   * `before` (with no other hub alive, each is a dead hub's), holding off any hub that starts
   * meanwhile: returns how many, or undefined when other hubs are live (they may be
   * mid-request, so only `releaseReservations` of old ones is safe).
   */
  releaseReservationsIfAlone(before: number): Promise<number | undefined>;

  // Usage ledger
  /** Writes a usage record of a request that reserved nothing (unlimited key, early failure). */
  recordUsage(record: UsageRecord): Promise<void>;
  /** Newest first. */
  listUsage(filter: UsageFilter & { limit: number; offset?: number }): Promise<UsageRecord[]>;
  usageTotals(filter: UsageFilter, by: "day" | "model"): Promise<UsageTotal[]>;

  // Prices
  listImagePrices(): Promise<ImagePrice[]>;
  listTokenPrices(): Promise<TokenPrice[]>;
  /** Inserts or replaces. */
  putImagePrice(price: ImagePrice): Promise<void>;
  putTokenPrice(price: TokenPrice): Promise<void>;
  deleteImagePrice(model: string, size: string, quality: string): Promise<boolean>;
  /** Inserts the prices that are not there yet; existing rows (admin edits) are kept. */
  seedPrices(images: ImagePrice[], tokens: TokenPrice[]): Promise<void>;

  // Provider credentials
  createCredential(record: ProviderCredentialRecord): Promise<void>;
  listCredentials(): Promise<ProviderCredentialRecord[]>;
  updateCredential(
    id: string,
    changes: Partial<Pick<ProviderCredentialRecord, "name" | "weight" | "disabledAt">>,
  ): Promise<ProviderCredentialRecord | undefined>;
  deleteCredential(id: string): Promise<boolean>;

  // Model routes (timeouts, fallbacks, retry policy)
  listModelRoutes(): Promise<ModelRouteRecord[]>;
  /** Creates or replaces the route of `record.model`. */
  putModelRoute(record: ModelRouteRecord): Promise<void>;
  deleteModelRoute(model: string): Promise<boolean>;

  // Catalog models (admin definitions and overrides)
  /** Ordered by id, bytewise. */
  listCatalogModels(): Promise<CatalogModelRecord[]>;
  /** Creates or replaces the row of `record.id`. */
  putCatalogModel(record: CatalogModelRecord): Promise<void>;
  /**
   * Creates the row only when no row has this id, or when the existing row is hidden (a deleted
   * built-in defined anew); false when a visible row exists (the caller answers 409). Atomic (no
   * race between two instances).
   */
  insertCatalogModel(record: CatalogModelRecord): Promise<boolean>;
  /** False when there was no row of this id. */
  deleteCatalogModel(id: string): Promise<boolean>;
  /**
   * Calls `listener` soon after any instance changes catalog_models: on PostgreSQL through
   * LISTEN/NOTIFY on the connection each hub keeps for its life, so every hub on the same
   * database and schema hears it; on SQLite after the writes made through this Database. Only
   * writes that changed a row count (an insert refused or a delete of nothing is silent).
   *
   * On PostgreSQL, listening starts within a round trip of the first call, not before it
   * returns. When the connection is lost, it is opened again (backing off) and every listener is
   * called once more, since changes made meanwhile went unheard. A listener that throws is
   * skipped: neither the write nor the other listeners see its error. Closing the database
   * stops listening. Returns a function that stops this listener.
   *
   * @example
   * const stop = db.onCatalogChange(() => void reloadCatalog());
   */
  onCatalogChange(listener: () => void): () => void;

  addHostedImages(images: HostedImageRecord[]): Promise<void>;
  /** Newest first. */
  listHostedImages(filter: HostedImageFilter): Promise<HostedImageRecord[]>;
  /** Forgets images whose URLs expired at or before `now`; returns how many. */
  deleteExpiredHostedImages(now: number): Promise<number>;
  /** Writes a task down before it is polled (crash recovery). */
  putUpstreamTask(record: UpstreamTaskRecord): Promise<void>;
  /** Forgets a task that ended; false when there was none. */
  deleteUpstreamTask(provider: string, taskId: string): Promise<boolean>;
  listUpstreamTasks(): Promise<UpstreamTaskRecord[]>;
  close(): Promise<void>;
}
