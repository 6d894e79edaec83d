/** Creating keys: the one place a secret exists in clear, to be handed back once. */
import type { ApiKeyRecord, Database, KeyRole } from "../storage/db/types.ts";
import { generateApiKey } from "./keys.ts";

export interface IssuedKey {
  record: ApiKeyRecord;
  id: string;
  name: string;
  role: KeyRole;
  createdAt: number;
  /** Shown once; only its hash is stored. */
  key: string;
}

export interface KeyOptions {
  name: string;
  role: KeyRole;
  models?: string[] | null;
  rpm?: number | null;
  ipm?: number | null;
  balanceMicros?: number | null;
  now?: number;
}

export async function issueKey(db: Database, options: KeyOptions): Promise<IssuedKey> {
  const { id, secretHash, key } = generateApiKey();
  const record: ApiKeyRecord = {
    id,
    name: options.name,
    role: options.role,
    secretHash,
    models: options.models ?? null,
    rpm: options.rpm ?? null,
    ipm: options.ipm ?? null,
    balanceMicros: options.balanceMicros ?? null,
    createdAt: options.now ?? Date.now(),
    revokedAt: null,
    lastUsedAt: null,
  };
  await db.createKey(record);
  return { record, id, name: record.name, role: record.role, createdAt: record.createdAt, key };
}
