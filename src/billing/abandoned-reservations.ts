/**
 * Reservations whose requests never ended (their hub was killed or crashed), given back at start
 * and, on a shared database, now and then while the hub runs. A dead hub on PostgreSQL is also
 * noticed by its silence (billing/live-instances.ts); this is the net under that.
 */
import type { FastifyInstance } from "fastify";
import type { Database } from "../storage/db/types.ts";

/** Longer than any request can take (upstream timeouts are minutes), so never a live one. */
export const ABANDONED_RESERVATION_MS = 60 * 60 * 1000;
/** How long a start keeps looking for hubs that only seemed live: 40 × 250 ms = 10 s. */
const LOOK_AGAIN_TRIES = 40;
const LOOK_AGAIN_MS = 250;

/**
 * A reservation outlives its request only when the process died mid-request (a kill -9, a
 * crash; a shutdown lets its requests settle or cuts them, and a cut request settles too).
 *
 * On SQLite one hub owns the file, so at start every open reservation is such a one, whatever
 * its time: a clock stepped back since the crash must not keep one open for good.
 *
 * On PostgreSQL other hubs may be mid-request. A hub that starts as the only live one (each
 * holds an advisory lock for its life; see storage/db/postgres.ts) releases every open one, as
 * on SQLite. Otherwise nothing tells a live hub's reservations from a dead one's, so only those
 * older than any request can take are released, at start and then every few minutes (for hubs
 * that crashed while others ran): never handing back credit a live request will still charge
 * against (its image would be free, and the key could overdraw).
 */
export async function releaseAbandonedReservations(
  db: Database,
  app: FastifyInstance,
  clock: () => number,
): Promise<boolean> {
  const release = async (before: number) => {
    const released = await db.releaseReservations(before);
    if (released > 0) {
      app.log.warn({ released }, "released reservations of requests that never ended");
    }
  };
  const startedAt = clock();
  // Nothing of this hub's is open yet: if it is alone, every open reservation is a dead one's.
  const released = await db.releaseReservationsIfAlone(Number.MAX_SAFE_INTEGER);
  if (released === undefined) {
    await release(clock() - ABANDONED_RESERVATION_MS);
    lookAgainForOtherHubs(db, app, startedAt);
  } else if (released > 0) {
    app.log.warn({ released }, "released reservations of requests that never ended");
  }
  if (db.kind === "sqlite") return true;
  const timer = setInterval(() => {
    release(clock() - ABANDONED_RESERVATION_MS).catch((error: unknown) => {
      app.log.warn({ err: error }, "could not release abandoned reservations");
    });
  }, 5 * 60_000);
  timer.unref();
  app.addHook("onClose", async () => clearInterval(timer));
  return released !== undefined;
}

/**
 * Another hub seemed live at start; it may be one just killed, whose session PostgreSQL has not
 * ended yet (it notices a dead client within moments, not at once). Looks again for a while, in
 * the background so the start is not held up; once alone, it releases what was reserved before
 * this hub started (its own reservations are younger, so they are never taken).
 */
function lookAgainForOtherHubs(db: Database, app: FastifyInstance, startedAt: number): void {
  let tries = 0;
  const timer = setInterval(() => {
    tries += 1;
    if (tries >= LOOK_AGAIN_TRIES) clearInterval(timer);
    db.releaseReservationsIfAlone(startedAt).then(
      (released) => {
        if (released === undefined) return;
        clearInterval(timer);
        if (released > 0) {
          app.log.warn({ released }, "released reservations of a hub that is gone");
        }
      },
      (error: unknown) => app.log.warn({ err: error }, "could not look for other live hubs"),
    );
  }, LOOK_AGAIN_MS);
  timer.unref();
  app.addHook("onClose", async () => clearInterval(timer));
}
