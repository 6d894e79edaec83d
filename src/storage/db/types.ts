/**
 * The database seam. SQLite (node:sqlite) is the default; a PostgreSQL backend implements the
 * same interface with the same migrations. Methods are async so both backends fit.
 */

export type KeyRole = "admin" | "client";

export interface ApiKeyRecord {
  /** Short public id, part of the key itself, used to look the key up. */
  id: string;
  name: string;
  role: KeyRole;
  /** SHA-256 of the key's secret part, hex. The secret itself is never stored. */
  secretHash: string;
  createdAt: number;
  revokedAt: number | null;
}

export type UsageStatus = "succeeded" | "partial" | "failed";

/** One durable record per image request: what was asked, what was delivered, how it went. */
export interface UsageRecord {
  id: string;
  keyId: string;
  model: string;
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
  createdAt: number;
}

export interface Database {
  readonly kind: "sqlite" | "postgres";
  createKey(record: ApiKeyRecord): Promise<void>;
  findKey(id: string): Promise<ApiKeyRecord | undefined>;
  countActiveKeys(role: KeyRole): Promise<number>;
  recordUsage(record: UsageRecord): Promise<void>;
  listUsage(options: { keyId?: string; limit: number }): Promise<UsageRecord[]>;
  close(): Promise<void>;
}
