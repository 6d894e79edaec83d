/**
 * What the registry needs of credential health, whichever keeps it: this process alone
 * (health.ts) or every instance through Redis (health-shared.ts). Reads are synchronous, from a
 * local view that `sync` brings up to date before a pick; the probe after a quarantine is
 * claimed with `tryBeginProbe`, which another call (here or on another instance) may hold.
 */
import { createCredentialHealth, type Health, type Usability } from "./health.ts";

export interface HealthBoard {
  get(id: string): Health | undefined;
  usability(id: string): Usability;
  /** Brings the local view of these credentials up to date (a no-op in one process). */
  sync(ids: readonly string[]): Promise<void>;
  /** Claims the probe of a credential whose quarantine ended; undefined when another has it. */
  tryBeginProbe(id: string): Promise<(() => void) | undefined>;
  coolDown(id: string, retryAfterSeconds: number | undefined): unknown;
  /** Quarantines the credential for the next step of its back-off; resolves to the wait. */
  refused(id: string, status: number, lastError: string | null): number | Promise<number>;
  succeeded(id: string): unknown;
  reset(id: string): unknown;
}

/** Health in this process's memory: what one hub alone needs. */
export function localHealthBoard(clock: () => number): HealthBoard {
  const health = createCredentialHealth(clock);
  return {
    get: health.get,
    usability: health.usability,
    sync: async () => {},
    tryBeginProbe: async (id) =>
      health.usability(id) === "probe" ? health.beginProbe(id) : undefined,
    coolDown: health.coolDown,
    refused: health.refused,
    succeeded: health.succeeded,
    reset: health.reset,
  };
}
