/**
 * First start: when no ADMIN_KEY is set and the database has no admin key, create one so the
 * operator can issue keys at all. Its secret is returned once, for main.ts to print.
 *
 * main.ts calls this only once the hub listens, so that a key is never stored by a start that
 * fails before it could print it. A lost key is replaced with `npm run hub -- admin new-key`.
 */
import type { Database } from "../storage/db/types.ts";
import { type IssuedKey, issueKey } from "./issue.ts";

export async function ensureAdminKey(
  db: Database,
  adminKeySetting: string | undefined,
): Promise<IssuedKey | undefined> {
  if (adminKeySetting) return undefined;
  if ((await db.countActiveKeys("admin")) > 0) return undefined;
  return issueKey(db, { name: "first admin", role: "admin" });
}
