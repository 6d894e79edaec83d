/** Creating keys: the one place a secret exists in clear, to be handed back once. */
import type { Database, KeyRole } from "../storage/db/types.ts";
import { generateApiKey } from "./keys.ts";

export interface IssuedKey {
  id: string;
  name: string;
  role: KeyRole;
  createdAt: number;
  /** Shown once; only its hash is stored. */
  key: string;
}

export async function issueKey(
  db: Database,
  options: { name: string; role: KeyRole; now?: number },
): Promise<IssuedKey> {
  const { id, secretHash, key } = generateApiKey();
  const createdAt = options.now ?? Date.now();
  await db.createKey({
    id,
    name: options.name,
    role: options.role,
    secretHash,
    createdAt,
    revokedAt: null,
  });
  return { id, name: options.name, role: options.role, createdAt, key };
}
