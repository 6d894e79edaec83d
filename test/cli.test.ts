/**
 * The operator CLI as a process: `node src/cli.ts keys …` against a temporary DATA_DIR, the
 * same database file the server opens. create → list → show → update → credit → rotate → revoke,
 * the secret printed once working against the database, exit codes and --json; `admin new-key`
 * for a lost admin key; and the refusal of a DATA_DIR that holds no database.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { createAuthenticator } from "../src/auth/principal.ts";
import { openDatabase } from "../src/storage/db/open.ts";

const CLI = fileURLToPath(new URL("../src/cli.ts", import.meta.url));

let dataDir: string;

before(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "image-hub-cli-"));
  // The database as the hub's first start leaves it: the CLI refuses a DATA_DIR without one.
  // Made by openDatabase, so a rename of its file in open.ts fails these tests.
  const db = await openDatabase({ dataDir, databaseUrl: undefined });
  await db.close();
});

after(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function hub(...args: string[]): Promise<Run> {
  return hubIn(dataDir, ...args);
}

/** The CLI with `directory` as its DATA_DIR. */
function hubIn(directory: string, ...args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH, DATA_DIR: directory },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

function ok(run: Run): Run {
  assert.equal(run.code, 0, `exit ${run.code}: ${run.stderr}`);
  return run;
}

async function authenticates(key: string): Promise<boolean> {
  return (await roleOf(key)) !== undefined;
}

/** The role `key` authenticates as against the database; undefined when it is refused. */
async function roleOf(key: string): Promise<string | undefined> {
  const db = await openDatabase({ dataDir, databaseUrl: undefined });
  try {
    const principal = await createAuthenticator({ db, adminKey: undefined }).authenticate(
      `Bearer ${key}`,
    );
    return principal.role;
  } catch {
    return undefined;
  } finally {
    await db.close();
  }
}

const KEY_PATTERN = /sk-ih-[0-9a-f]{12}-[A-Za-z0-9_-]{43}/g;

describe("hub keys", () => {
  let id: string;
  let key: string;

  it("create prints the key once, with a warning, and the key works against the database", async () => {
    const run = ok(
      await hub(
        "keys",
        "create",
        "--name",
        "shop",
        "--balance",
        "10",
        "--models",
        "gpt-image-1,dall-e-3",
        "--rpm",
        "60",
        "--ipm",
        "20",
      ),
    );
    const keys = run.stdout.match(KEY_PATTERN) ?? [];
    assert.equal(keys.length, 1, "the secret is printed exactly once");
    key = keys[0] as string;
    id = key.slice(6, 18);
    assert.match(run.stdout, /shown only this once/);
    assert.match(run.stdout, /\$10\.000000/);
    assert.ok(await authenticates(key));
  });

  it("list shows the key without its secret", async () => {
    const run = ok(await hub("keys", "list"));
    assert.match(run.stdout, new RegExp(`${id}\\s+shop\\s+client\\s+active`));
    assert.doesNotMatch(run.stdout, KEY_PATTERN);
    const json = JSON.parse(ok(await hub("keys", "list", "--json")).stdout) as Array<{
      id: string;
      balance: number;
      models: string[];
    }>;
    const listed = json.find((view) => view.id === id);
    assert.equal(listed?.balance, 10);
    assert.deepEqual(listed?.models, ["gpt-image-1", "dall-e-3"]);
  });

  it("show --json prints the public view", async () => {
    const view = JSON.parse(ok(await hub("keys", "show", id, "--json")).stdout) as Record<
      string,
      unknown
    >;
    assert.equal(view.object, "api_key");
    assert.equal(view.name, "shop");
    assert.equal(view.rpm, 60);
    assert.equal(view.ipm, 20);
    assert.equal(view.revoked_at, null);
    assert.equal("key" in view, false);
  });

  it("update and credit change the key", async () => {
    const updated = JSON.parse(
      ok(
        await hub(
          "keys",
          "update",
          id,
          "--name",
          "shop2",
          "--rpm",
          "none",
          "--models",
          "all",
          "--json",
        ),
      ).stdout,
    ) as Record<string, unknown>;
    assert.equal(updated.name, "shop2");
    assert.equal(updated.rpm, null);
    assert.equal(updated.models, null);
    assert.equal(updated.ipm, 20);
    const credited = JSON.parse(
      ok(await hub("keys", "credit", id, "--amount", "5", "--json")).stdout,
    ) as { balance: number };
    assert.equal(credited.balance, 15);
    const taken = JSON.parse(
      ok(await hub("keys", "credit", id, "--amount=-2.5", "--json")).stdout,
    ) as { balance: number };
    assert.equal(taken.balance, 12.5);
  });

  it("rotate prints a new key; the old one stops working", async () => {
    const run = ok(await hub("keys", "rotate", id, "--json"));
    const rotated = JSON.parse(run.stdout) as { id: string; key: string };
    assert.equal(rotated.id, id);
    assert.match(run.stderr, /shown only this once/);
    assert.equal(await authenticates(key), false);
    assert.equal(await authenticates(rotated.key), true);
    key = rotated.key;
  });

  it("revoke stops the key", async () => {
    const run = ok(await hub("keys", "revoke", id));
    assert.match(run.stdout, /revoked/);
    assert.equal(await authenticates(key), false);
    const view = JSON.parse(ok(await hub("keys", "show", id, "--json")).stdout) as {
      revoked_at: number | null;
    };
    assert.ok(Number.isInteger(view.revoked_at));
  });

  it("creates admin keys", async () => {
    const run = ok(await hub("keys", "create", "--name", "ops", "--role", "admin", "--json"));
    const created = JSON.parse(run.stdout) as { role: string; key: string };
    assert.equal(created.role, "admin");
    assert.ok(await authenticates(created.key));
  });

  it("--models takes a model an operator added, as the server's catalog has it", async () => {
    const db = await openDatabase({ dataDir, databaseUrl: undefined });
    try {
      await db.putCatalogModel({
        id: "team/poster",
        definition: JSON.stringify({
          mode: "define",
          fields: {
            id: "team/poster",
            provider: "openai",
            upstream_model: "gpt-image-2",
            sizes: ["1024x1024"],
          },
        }),
        hidden: false,
        updatedAt: Date.now(),
      });
    } finally {
      await db.close();
    }
    const run = ok(
      await hub(
        "keys",
        "create",
        "--name",
        "posters",
        "--models",
        "team/poster,dall-e-3",
        "--json",
      ),
    );
    assert.deepEqual((JSON.parse(run.stdout) as { models: string[] }).models, [
      "team/poster",
      "dall-e-3",
    ]);
  });
});

describe("hub admin new-key", () => {
  it("prints a new admin key; the other stored admin keys are revoked, client keys are not", async () => {
    const old = JSON.parse(
      ok(await hub("keys", "create", "--name", "old-admin", "--role", "admin", "--json")).stdout,
    ) as { id: string; key: string };
    const client = JSON.parse(
      ok(await hub("keys", "create", "--name", "app", "--json")).stdout,
    ) as { key: string };
    assert.equal(await roleOf(old.key), "admin");

    const run = ok(await hub("admin", "new-key", "--json"));
    const created = JSON.parse(run.stdout) as { role: string; key: string; revoked_at: null };
    assert.equal(created.role, "admin");
    assert.match(run.stderr, /shown only this once/);
    assert.match(run.stderr, new RegExp(`Revoked the other admin keys: .*${old.id}`));
    assert.equal(await roleOf(created.key), "admin");
    assert.equal(await authenticates(old.key), false, "the old admin key no longer works");
    assert.equal(await roleOf(client.key), "client", "client keys are left alone");
    const admins = (
      JSON.parse(ok(await hub("keys", "list", "--json")).stdout) as Array<{
        role: string;
        revoked_at: number | null;
      }>
    ).filter((view) => view.role === "admin" && view.revoked_at === null);
    assert.equal(admins.length, 1, "only the new admin key is active");
  });

  it("as text, prints the key once and replaces the key it printed before", async () => {
    const first = ok(await hub("admin", "new-key", "--name", "ops"));
    const [key] = first.stdout.match(KEY_PATTERN) ?? [];
    assert.equal(first.stdout.match(KEY_PATTERN)?.length, 1);
    assert.match(first.stdout, /name:\s+ops/);
    const second = ok(await hub("admin", "new-key"));
    const [next] = second.stdout.match(KEY_PATTERN) ?? [];
    assert.equal(await authenticates(key as string), false);
    assert.equal(await roleOf(next as string), "admin");
  });
});

describe("negative credit", () => {
  it("keys credit takes a negative amount as --amount -5 and as --amount=-5", async () => {
    const { id } = JSON.parse(
      ok(await hub("keys", "create", "--name", "refund", "--balance", "20", "--json")).stdout,
    ) as { id: string };
    const spaced = JSON.parse(
      ok(await hub("keys", "credit", id, "--amount", "-5", "--json")).stdout,
    ) as { balance: number };
    assert.equal(spaced.balance, 15);
    const joined = JSON.parse(
      ok(await hub("keys", "credit", id, "--amount=-5", "--json")).stdout,
    ) as { balance: number };
    assert.equal(joined.balance, 10);
    const fraction = JSON.parse(
      ok(await hub("keys", "credit", id, "--amount", "-.5", "--json")).stdout,
    ) as { balance: number };
    assert.equal(fraction.balance, 9.5);
  });

  it("a missing value is still refused, not taken from the next option", async () => {
    const run = await hub("keys", "create", "--name", "--json");
    assert.equal(run.code, 2, run.stderr);
  });
});

describe("a DATA_DIR that holds no database", () => {
  let empty: string;

  before(async () => {
    empty = await mkdtemp(path.join(os.tmpdir(), "image-hub-cli-empty-"));
  });

  after(async () => {
    await rm(empty, { recursive: true, force: true });
  });

  it("is refused with exit code 1, naming DATA_DIR and --create; nothing is created", async () => {
    const run = await hubIn(empty, "keys", "list");
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /DATA_DIR/);
    assert.ok(run.stderr.includes(empty), run.stderr);
    assert.match(run.stderr, /--create/);
    assert.equal(existsSync(path.join(empty, "image-hub.sqlite")), false);

    const missing = path.join(empty, "no-such-dir");
    const refused = await hubIn(missing, "keys", "create", "--name", "x");
    assert.equal(refused.code, 1, refused.stderr);
    assert.equal(existsSync(missing), false, "not even the directory is made");
  });

  it("--create creates it, and later commands use it without --create", async () => {
    const created = ok(await hubIn(empty, "keys", "create", "--name", "first", "--create"));
    assert.match(created.stdout, KEY_PATTERN);
    assert.ok(existsSync(path.join(empty, "image-hub.sqlite")));
    const listed = ok(await hubIn(empty, "keys", "list"));
    assert.match(listed.stdout, /first/);
  });
});

describe("exit codes", () => {
  it("0 and the usage for help", async () => {
    const run = ok(await hub("help"));
    assert.match(run.stdout, /keys create --name/);
    assert.match(run.stdout, /admin new-key/);
    assert.match(run.stdout, /--create/);
  });

  it("1 with the message on stderr when the command fails", async () => {
    const unknown = await hub("keys", "show", "000000000000");
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /No API key with id '000000000000'/);
    const badModel = await hub("keys", "create", "--name", "x", "--models", "no-such-model");
    assert.equal(badModel.code, 1);
    assert.match(badModel.stderr, /no-such-model/);
  });

  it("2 with the usage when the command line is wrong", async () => {
    for (const args of [
      ["keys", "launch"],
      ["keys", "create"],
      ["keys", "show"],
      ["keys", "credit", "000000000000"],
      ["keys", "create", "--name", "x", "--rpm", "fast"],
      ["keys", "list", "--colour"],
      ["keys", "create", "--name", "x", "--role", "root"],
      ["keys", "update", "000000000000"],
      ["widgets"],
      ["admin"],
      ["admin", "launch"],
      ["admin", "new-key", "extra"],
    ]) {
      const run = await hub(...args);
      assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
      assert.match(run.stderr, /Usage:/);
    }
  });
});
