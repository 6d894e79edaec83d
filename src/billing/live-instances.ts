/**
 * Several hubs on one PostgreSQL database: which of them are alive, so that the reservations of
 * one that died (killed, crashed, its machine gone) are given back within about a minute by the
 * others, and never a live one's, however slow its request.
 *
 * Each hub writes a heartbeat every `beatMs` (10 s) and, as often, looks for hubs whose last
 * heartbeat is older than `deadAfterMs` (45 s: four missed beats plus margin). Those are dead:
 * their reservations are released and their lost requests written to the ledger as failed, at
 * no cost (storage/db: releaseDeadInstances). A live hub with a slow request keeps beating, so
 * its reservations stay; only a hub cut off from the database for that long is taken for dead,
 * and a request of it that ends after all replaces its lost row with what happened (the charge
 * beyond what is left reserved is not taken: the image is free, the ledger is still right).
 *
 * A clean shutdown forgets its own row at once. A heartbeat that cannot be written is logged
 * and tried again at the next beat; nothing here stops the hub from serving.
 */
import type { Database } from "../storage/db/types.ts";

export const HEARTBEAT_MS = 10_000;
export const DEAD_AFTER_MS = 45_000;

export interface LiveInstanceOptions {
  db: Pick<Database, "heartbeat" | "forgetInstance" | "releaseDeadInstances">;
  instanceId: string;
  clock?: () => number;
  beatMs?: number;
  deadAfterMs?: number;
  log?: { warn(details: object, message: string): void };
}

/** Beats at once and then every `beatMs`; resolves when the first heartbeat is written. */
export async function startHeartbeat(
  options: LiveInstanceOptions,
): Promise<{ stop(): Promise<void> }> {
  const clock = options.clock ?? Date.now;
  const deadAfterMs = options.deadAfterMs ?? DEAD_AFTER_MS;
  // Four beats and a half within the time that makes a hub dead: one late beat is not death.
  const beatMs = options.beatMs ?? Math.max(500, Math.min(HEARTBEAT_MS, deadAfterMs / 4.5));
  const startedAt = clock();
  const { db, instanceId, log } = options;

  const beat = async () => {
    try {
      await db.heartbeat(instanceId, startedAt, clock());
      const now = clock();
      const dead = await db.releaseDeadInstances(now - deadAfterMs, now);
      if (dead.instances.length > 0) {
        log?.warn(
          { instances: dead.instances, released: dead.released },
          "released the reservations of hub instances that stopped beating",
        );
      }
    } catch (error) {
      log?.warn({ err: error }, "could not write this hub's heartbeat");
    }
  };

  await beat();
  let running: Promise<void> | undefined;
  const timer = setInterval(() => {
    running ??= beat().finally(() => {
      running = undefined;
    });
  }, beatMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
      await db.forgetInstance(instanceId).catch((error: unknown) => {
        log?.warn({ err: error }, "could not say this hub is leaving");
      });
    },
  };
}
