/**
 * Picks the backend from the configuration: SQLite in DATA_DIR by default, PostgreSQL when
 * DATABASE_URL names one.
 */
import path from "node:path";
import { openSqliteDatabase } from "./sqlite.ts";
import type { Database } from "./types.ts";

export interface OpenDatabaseOptions {
  dataDir: string;
  /** `postgres://…` or `postgresql://…`; undefined for SQLite. */
  databaseUrl: string | undefined;
}

/**
 * Opens and migrates the hub's database.
 *
 * @example
 * const db = await openDatabase({ dataDir: config.dataDir, databaseUrl: config.databaseUrl });
 */
export async function openDatabase(options: OpenDatabaseOptions): Promise<Database> {
  const { dataDir, databaseUrl } = options;
  if (databaseUrl === undefined) {
    return openSqliteDatabase(path.join(dataDir, "image-hub.sqlite"));
  }
  if (/^postgres(ql)?:\/\//i.test(databaseUrl)) {
    // Loaded only for PostgreSQL: a hub on SQLite never loads pg.
    const { openPostgresDatabase } = await import("./postgres.ts");
    return openPostgresDatabase(databaseUrl);
  }
  // Name only the scheme: the rest of the URL may hold a password.
  const scheme = /^[a-z][a-z0-9+.-]*:/i.exec(databaseUrl)?.[0] ?? "no scheme";
  throw new Error(
    `DATABASE_URL must start with postgres:// or postgresql:// (got ${scheme}); leave it unset to use SQLite in DATA_DIR`,
  );
}
