/**
 * The database backends a storage test runs against: SQLite on a temporary file, PostgreSQL on
 * a fresh schema of TEST_DATABASE_URL. Each `open()` gives an empty, migrated database of its
 * own, so tests do not see each other's rows.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Client } from "pg";
import { openPostgresDatabase } from "../../../src/storage/db/postgres.ts";
import { openSqliteDatabase } from "../../../src/storage/db/sqlite.ts";
import type { Database } from "../../../src/storage/db/types.ts";

export type Row = Record<string, unknown>;

export interface OpenedDatabase {
  db: Database;
  /** Closes the database and opens the same store again (a restart); `db` becomes the new one. */
  reopen(): Promise<Database>;
  /** Closes the database and deletes its store. */
  drop(): Promise<void>;
  /** Runs SQL on a connection of its own, for tests that look beneath the interface. */
  query(sql: string): Promise<Row[]>;
}

export interface Backend {
  name: "sqlite" | "postgres";
  /** Why the backend's tests are skipped on this machine; undefined when they run. */
  skip: string | undefined;
  open(): Promise<OpenedDatabase>;
}

export const postgresUrl =
  process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** A name no other run uses, valid as a PostgreSQL schema. */
export function freshSchemaName(): string {
  return `test_${randomBytes(8).toString("hex")}`;
}

const sqlite: Backend = {
  name: "sqlite",
  skip: undefined,
  async open() {
    const directory = await mkdtemp(path.join(tmpdir(), "image-hub-db-"));
    const file = path.join(directory, "image-hub.sqlite");
    const opened: OpenedDatabase = {
      db: await openSqliteDatabase(file),
      async reopen() {
        await opened.db.close();
        opened.db = await openSqliteDatabase(file);
        return opened.db;
      },
      async drop() {
        await opened.db.close();
        await rm(directory, { recursive: true, force: true });
      },
      async query(sql) {
        const side = new DatabaseSync(file);
        try {
          return side.prepare(sql).all() as Row[];
        } finally {
          side.close();
        }
      },
    };
    return opened;
  },
};

/** Undefined when the server answers; otherwise why not. Probed once per test process. */
const postgresProblem = await probe(postgresUrl);

const postgres: Backend = {
  name: "postgres",
  skip:
    postgresProblem === undefined || process.env.CI
      ? undefined
      : `PostgreSQL unreachable at ${redact(postgresUrl)} (${postgresProblem}); start one or set TEST_DATABASE_URL to run these tests`,
  async open() {
    if (postgresProblem !== undefined) {
      throw new Error(
        `CI is set and PostgreSQL is unreachable at ${redact(postgresUrl)} (${postgresProblem}): the PostgreSQL storage tests cannot run. Point TEST_DATABASE_URL at a server.`,
      );
    }
    const schema = freshSchemaName();
    const opened: OpenedDatabase = {
      db: await openPostgresDatabase(postgresUrl, { schema }),
      async reopen() {
        await opened.db.close();
        opened.db = await openPostgresDatabase(postgresUrl, { schema });
        return opened.db;
      },
      async drop() {
        await opened.db.close();
        await dropSchema(schema);
      },
      async query(sql) {
        return withClient(async (client) => {
          await client.query(`SET search_path TO ${schema}`);
          return (await client.query(sql)).rows as Row[];
        });
      },
    };
    return opened;
  },
};

export const backends: Backend[] = [sqlite, postgres];

/** Creates an empty schema, for tests that open PostgreSQL without the `schema` option. */
export async function createSchema(schema: string): Promise<void> {
  await withClient((client) => client.query(`CREATE SCHEMA ${schema}`));
}

/** Drops a schema made by a test, with everything in it. */
export async function dropSchema(schema: string): Promise<void> {
  await withClient((client) => client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`));
}

async function withClient<T>(work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: postgresUrl });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

async function probe(url: string): Promise<string | undefined> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query("SELECT 1");
    return undefined;
  } catch (error) {
    // A refused connection is an AggregateError with an empty message but a code.
    const code = (error as { code?: unknown }).code;
    const message = error instanceof Error ? error.message : String(error);
    return message || (typeof code === "string" ? code : "no answer");
  } finally {
    await client.end().catch(() => {});
  }
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@");
}

/**
 * A fresh, empty schema of TEST_DATABASE_URL for a hub, and the DATABASE_URL that selects it (as
 * an operator's URL may, by search_path). Drop it once the hubs on it are closed.
 *
 * @example
 * const store = await freshPostgresStore();
 * const hub = await startTestHub({ DATABASE_URL: store.databaseUrl });
 * // … await hub.close(); await store.drop();
 */
export async function freshPostgresStore(): Promise<{
  databaseUrl: string;
  drop(): Promise<void>;
}> {
  const schema = freshSchemaName();
  await createSchema(schema);
  const url = new URL(postgresUrl);
  url.searchParams.set("options", `-c search_path=${schema}`);
  return { databaseUrl: url.toString(), drop: () => dropSchema(schema) };
}
