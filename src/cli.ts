/**
 * The operator's command line: API keys without going through HTTP, against the same database
 * the server uses (DATA_DIR / DATABASE_URL). Safe to run while the hub runs: the hub reads a
 * key on every request, so a revoke or rotate here takes effect on the next one.
 *
 *   npm run hub -- keys create --name my-app --balance 10 --models gpt-image-1 --rpm 60
 *   npm run hub -- admin new-key        (a lost admin key: a new one, the others revoked)
 *
 * It refuses a DATA_DIR that holds no database unless given --create: run from the wrong
 * directory, it would otherwise make an empty database there and issue keys the hub never sees.
 *
 * Exit codes: 0 done, 1 the command failed (message on stderr), 2 the command line is wrong.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import type { KeyService, KeyView, UpdateKeyInput } from "./auth/key-service.ts";
import { createKeyService } from "./auth/key-service.ts";
import { loadConfig } from "./config.ts";
import { createCatalogStore } from "./images/catalog-store.ts";
import { openDatabase } from "./storage/db/open.ts";
import type { KeyRole } from "./storage/db/types.ts";

const USAGE = `Usage: npm run hub -- <command> [options]

Commands:
  keys create --name <name> [--balance <usd>] [--models <id,id>] [--rpm <n>] [--ipm <n>] [--role client|admin]
  keys list
  keys show <id>
  keys update <id> [--name <name>] [--balance <usd>|unlimited] [--models <id,id>|all]
                   [--rpm <n>|none] [--ipm <n>|none]
  keys credit <id> --amount <usd>      (negative to take credit back)
  keys revoke <id>
  keys rotate <id>                     (new secret; the old one stops working at once)
  admin new-key [--name <name>]        (a new admin key, shown once; every other admin key
                                        stored in the database is revoked; ADMIN_KEY still works)
  help

Options:
  --json    print JSON instead of text
  --create  create the database when DATA_DIR holds none yet

The database is the server's: DATA_DIR (default ./data) or DATABASE_URL. A DATA_DIR without
the hub's database is refused unless --create is given (the hub creates it on its first start).
`;

/** The SQLite file's name in DATA_DIR, as storage/db/open.ts names it (test/cli.test.ts makes
 * the database with openDatabase, so a rename there fails the tests here). */
const SQLITE_FILE = "image-hub.sqlite";

const OPTIONS = {
  name: { type: "string" },
  balance: { type: "string" },
  models: { type: "string" },
  rpm: { type: "string" },
  ipm: { type: "string" },
  role: { type: "string" },
  amount: { type: "string" },
  json: { type: "boolean", default: false },
  create: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

type Values = {
  name?: string;
  balance?: string;
  models?: string;
  rpm?: string;
  ipm?: string;
  role?: string;
  amount?: string;
  json: boolean;
  create: boolean;
  help: boolean;
};

/** A mistake in the command line itself: usage on stderr, exit code 2. */
class UsageError extends Error {}

interface Output {
  out(text: string): void;
  err(text: string): void;
}

/** Runs one command; returns the exit code. Exported for tests that do not want a process. */
export async function runCli(
  argv: readonly string[],
  env: Record<string, string | undefined> = process.env,
  output: Output = {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
  },
): Promise<number> {
  let values: Values;
  let positionals: string[];
  try {
    const parsed = parseArgs({
      args: joinNegativeNumbers(argv),
      options: OPTIONS,
      allowPositionals: true,
      strict: true,
    });
    values = parsed.values as Values;
    positionals = parsed.positionals;
  } catch (error) {
    output.err(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }

  const [group, command, id, ...extra] = positionals;
  if (values.help || group === undefined || group === "help") {
    output.out(USAGE);
    return 0;
  }

  try {
    if (group !== "keys" && group !== "admin") throw new UsageError(`Unknown command '${group}'.`);
    if (extra.length > 0) throw new UsageError(`Unexpected arguments: ${extra.join(" ")}.`);
    const run =
      group === "keys" ? commandOf(command, id, values) : adminCommandOf(command, id, values);
    const config = loadConfig(env);
    if (config.databaseUrl === undefined) checkDatabaseFile(config.dataDir, values.create, output);
    const db = await openDatabase({ dataDir: config.dataDir, databaseUrl: config.databaseUrl });
    // The catalog in force, with the models operators added, so `--models` may name them.
    const catalog = await createCatalogStore({ db, extraAliases: config.modelAliases });
    try {
      const keys = createKeyService(db, { catalog });
      await run(keys, output, values.json, config.adminKey !== undefined);
    } finally {
      catalog.stop();
      await db.close();
    }
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      output.err(`${error.message}\n\n${USAGE}`);
      return 2;
    }
    output.err(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

type Command = (
  keys: KeyService,
  output: Output,
  json: boolean,
  /** Whether the ADMIN_KEY setting is set (it has no row, so no command can revoke it). */
  adminKeySetting: boolean,
) => Promise<void>;

/**
 * `--amount -5` → `--amount=-5`. parseArgs takes a value that starts with a dash for a missing
 * one and refuses it, yet the usage promises negative amounts. Only a negative number is joined
 * to the option before it, so `--name --json` is still refused.
 */
function joinNegativeNumbers(argv: readonly string[]): string[] {
  const joined: string[] = [];
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index] as string;
    const next = argv[index + 1];
    if (arg === "--") return joined.concat(argv.slice(index));
    const option = arg.startsWith("--") ? arg.slice(2) : undefined;
    const takesValue =
      option !== undefined &&
      Object.hasOwn(OPTIONS, option) &&
      OPTIONS[option as keyof typeof OPTIONS].type === "string";
    if (takesValue && next !== undefined && /^-(\d|\.\d)/.test(next)) {
      joined.push(`${arg}=${next}`);
      index++;
    } else {
      joined.push(arg);
    }
  }
  return joined;
}

/**
 * Refuses a DATA_DIR without the hub's SQLite file, unless `--create`: opening it would make an
 * empty database there (a typo, the wrong working directory) and keys the hub never sees.
 */
function checkDatabaseFile(dataDir: string, create: boolean, output: Output): void {
  const file = path.resolve(dataDir, SQLITE_FILE);
  if (existsSync(file)) return;
  if (!create) {
    throw new Error(
      `DATA_DIR (${path.resolve(dataDir)}) holds no database (${SQLITE_FILE}). Set DATA_DIR to ` +
        "the hub's data directory (or DATABASE_URL to its PostgreSQL), or pass --create to " +
        "create a new, empty database there.",
    );
  }
  output.err(`Creating a new database: ${file}\n`);
}

/** The `admin` commands, checked before the database is opened like the `keys` ones. */
function adminCommandOf(
  command: string | undefined,
  id: string | undefined,
  values: Values,
): Command {
  if (command !== "new-key") {
    throw new UsageError(
      command === undefined ? "'admin' needs a command." : `Unknown command 'admin ${command}'.`,
    );
  }
  if (id !== undefined) throw new UsageError("'admin new-key' takes no arguments.");
  const name = values.name ?? "admin";
  return async (keys, output, json, adminKeySetting) => {
    // The new key first, then the revokes: if one fails half-way, a working admin key is already
    // in hand and the command can simply be run again.
    const created = await keys.create({ name, role: "admin" });
    const others = (await keys.list()).filter(
      (view) => view.role === "admin" && view.revoked_at === null && view.id !== created.view.id,
    );
    for (const other of others) await keys.revoke(other.id);
    printSecret(created, output, json);
    const notes = [
      others.length === 0
        ? "No other admin key was active."
        : `Revoked the other admin keys: ${others.map((view) => view.id).join(", ")}.`,
    ];
    if (adminKeySetting) {
      notes.push("The ADMIN_KEY setting still works: it is not stored here; change it to end it.");
    }
    // With --json, stdout holds only the JSON, as for `keys create`.
    if (json) output.err(`${notes.join("\n")}\n`);
    else output.out(`${notes.join("\n")}\n`);
  };
}

/** Checks the command line before the database is opened, and returns the work to do. */
function commandOf(command: string | undefined, id: string | undefined, values: Values): Command {
  const needId = (): string => {
    if (!id) throw new UsageError(`'keys ${command}' needs a key id.`);
    return id;
  };
  const noId = () => {
    if (id !== undefined) throw new UsageError(`'keys ${command}' takes no key id.`);
  };
  switch (command) {
    case "create": {
      noId();
      if (values.name === undefined) throw new UsageError("'keys create' needs --name.");
      if (values.role !== undefined && values.role !== "client" && values.role !== "admin") {
        throw new UsageError("--role must be client or admin.");
      }
      const input = {
        name: values.name,
        role: values.role as KeyRole | undefined,
        balanceUsd: optionalNumber(values.balance, "--balance", ["unlimited"]),
        models: optionalModels(values.models),
        rpm: optionalNumber(values.rpm, "--rpm", ["none"]),
        ipm: optionalNumber(values.ipm, "--ipm", ["none"]),
      };
      return async (keys, output, json) => printSecret(await keys.create(input), output, json);
    }
    case "list":
      noId();
      return async (keys, output, json) => {
        const views = await keys.list();
        output.out(json ? `${JSON.stringify(views, null, 2)}\n` : table(views));
      };
    case "show": {
      const keyId = needId();
      return async (keys, output, json) => printView(await keys.show(keyId), output, json);
    }
    case "update": {
      const keyId = needId();
      const changes: UpdateKeyInput = {
        name: values.name,
        balanceUsd: optionalNumber(values.balance, "--balance", ["unlimited"]),
        models: optionalModels(values.models),
        rpm: optionalNumber(values.rpm, "--rpm", ["none"]),
        ipm: optionalNumber(values.ipm, "--ipm", ["none"]),
      };
      if (Object.values(changes).every((value) => value === undefined)) {
        throw new UsageError(
          "'keys update' needs at least one of --name, --balance, --models, --rpm, --ipm.",
        );
      }
      return async (keys, output, json) =>
        printView(await keys.update(keyId, changes), output, json);
    }
    case "credit": {
      const keyId = needId();
      const amount = optionalNumber(values.amount, "--amount", []);
      if (amount === undefined || amount === null) {
        throw new UsageError("'keys credit' needs --amount.");
      }
      return async (keys, output, json) =>
        printView(await keys.credit(keyId, amount), output, json);
    }
    case "revoke": {
      const keyId = needId();
      return async (keys, output, json) => printView(await keys.revoke(keyId), output, json);
    }
    case "rotate": {
      const keyId = needId();
      return async (keys, output, json) => printSecret(await keys.rotate(keyId), output, json);
    }
    default:
      throw new UsageError(
        command === undefined ? "'keys' needs a command." : `Unknown command 'keys ${command}'.`,
      );
  }
}

/** A number option; one of `nullWords` means null (unlimited, no limit). */
function optionalNumber(
  text: string | undefined,
  flag: string,
  nullWords: readonly string[],
): number | null | undefined {
  if (text === undefined) return undefined;
  if (nullWords.includes(text.trim().toLowerCase())) return null;
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value)) {
    const words = nullWords.length > 0 ? ` or ${nullWords.join("/")}` : "";
    throw new UsageError(`${flag} must be a number${words}, not '${text}'.`);
  }
  return value;
}

/** `a,b` → ["a","b"]; `all` → null (every model). */
function optionalModels(text: string | undefined): string[] | null | undefined {
  if (text === undefined) return undefined;
  if (text.trim().toLowerCase() === "all") return null;
  return text
    .split(",")
    .map((name) => name.trim())
    .filter(Boolean);
}

function printSecret(created: { view: KeyView; key: string }, output: Output, json: boolean): void {
  if (json) {
    output.out(`${JSON.stringify({ ...created.view, key: created.key }, null, 2)}\n`);
    output.err("The key is shown only this once: store it now.\n");
  } else {
    output.out(
      `${describe(created.view)}\n\nkey:       ${created.key}\n\nThe key is shown only this once: store it now.\n`,
    );
  }
}

function printView(view: KeyView, output: Output, json: boolean): void {
  output.out(json ? `${JSON.stringify(view, null, 2)}\n` : `${describe(view)}\n`);
}

function describe(view: KeyView): string {
  const rows: Array<[string, string]> = [
    ["id", view.id],
    ["name", view.name],
    ["role", view.role],
    ["status", view.revoked_at === null ? "active" : `revoked ${time(view.revoked_at)}`],
    ["models", view.models === null ? "all" : view.models.join(", ")],
    ["rpm", view.rpm === null ? "no limit" : String(view.rpm)],
    ["ipm", view.ipm === null ? "no limit" : String(view.ipm)],
    ["balance", usd(view.balance)],
    ["created", time(view.created_at)],
    ["last used", view.last_used_at === null ? "never" : time(view.last_used_at)],
  ];
  return rows.map(([label, value]) => `${`${label}:`.padEnd(11)}${value}`).join("\n");
}

function table(views: readonly KeyView[]): string {
  if (views.length === 0)
    return "No keys yet. Create one with: npm run hub -- keys create --name <name>\n";
  const header = ["ID", "NAME", "ROLE", "STATUS", "BALANCE", "RPM", "IPM", "MODELS", "LAST USED"];
  const rows = views.map((view) => [
    view.id,
    view.name,
    view.role,
    view.revoked_at === null ? "active" : "revoked",
    usd(view.balance),
    view.rpm === null ? "-" : String(view.rpm),
    view.ipm === null ? "-" : String(view.ipm),
    view.models === null ? "all" : view.models.join(","),
    view.last_used_at === null ? "never" : time(view.last_used_at),
  ]);
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] as string).length)),
  );
  return [header, ...rows]
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column] as number))
        .join("  ")
        .trimEnd(),
    )
    .join("\n")
    .concat("\n");
}

function usd(balance: number | null): string {
  return balance === null ? "unlimited" : `$${balance.toFixed(6)}`;
}

function time(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toISOString().replace(".000Z", "Z");
}

// Run when started as a program (node src/cli.ts), not when a test imports runCli.
if (import.meta.main) {
  process.exitCode = await runCli(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`error: ${String(error)}\n`);
    return 1;
  });
}
