/**
 * The operator's first start, as a process: the admin key is made and printed only once the hub
 * listens, so a first start that cannot listen (port busy) stores no key that nobody saw, and
 * the next start prints one that works.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { openDatabase } from "../../src/storage/db/open.ts";
import {
  callHub,
  freePort,
  HubExitedEarly,
  type HubProcess,
  startHubProcess,
} from "../helpers/hub-process.ts";

const ADMIN_KEY_LINE = /admin key \(shown once, store it now\): (sk-ih-\S+)/;

describe("the first start", { timeout: 60_000 }, () => {
  let dataDir: string;
  // Every hub started, so that one left running by a failed assertion is still killed.
  const hubs: HubProcess[] = [];
  async function start(port?: number): Promise<HubProcess> {
    const hub = await startHubProcess({ DATA_DIR: dataDir }, { port: port ?? (await freePort()) });
    hubs.push(hub);
    return hub;
  }

  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), "image-hub-first-start-"));
  });

  after(async () => {
    for (const hub of hubs) await hub.stop("SIGKILL");
    await rm(dataDir, { recursive: true, force: true });
  });

  async function activeAdminKeys(): Promise<number> {
    const db = await openDatabase({ dataDir, databaseUrl: undefined });
    try {
      return await db.countActiveKeys("admin");
    } finally {
      await db.close();
    }
  }

  it("exits non-zero on a busy port, having stored no admin key", async () => {
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen(0, "127.0.0.1", resolve));
    const { port } = squatter.address() as net.AddressInfo;
    try {
      await assert.rejects(start(port), (error: unknown) => {
        assert.ok(error instanceof HubExitedEarly, String(error));
        assert.equal(error.exit.signal, null, error.output);
        assert.notEqual(error.exit.code, 0, error.output);
        assert.doesNotMatch(error.output, ADMIN_KEY_LINE);
        return true;
      });
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
    assert.equal(await activeAdminKeys(), 0, "no admin key was stored by the failed start");
  });

  it("the next start prints the admin key, and it works against the admin API", async () => {
    const hub = await start();
    const key = ADMIN_KEY_LINE.exec(hub.output())?.[1];
    assert.ok(key, hub.output());
    const listed = await callHub(hub, "GET", "/api/admin/keys", { key });
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    assert.equal((await hub.stop("SIGTERM")).code, 0, hub.output());
    assert.equal(await activeAdminKeys(), 1);
  });

  it("a later start prints no new key and points to `admin new-key`", async () => {
    const hub = await start();
    assert.doesNotMatch(hub.output(), ADMIN_KEY_LINE);
    assert.match(hub.output(), /admin key: stored in the database.*admin new-key/);
    assert.equal((await hub.stop("SIGTERM")).code, 0, hub.output());
    assert.equal(await activeAdminKeys(), 1);
  });
});
