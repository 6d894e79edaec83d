/**
 * Reservation accounting, between the pipeline and the ledger. Before any provider is called,
 * the most a request can cost is taken from the key's credit (a 402 if it cannot be); when the
 * request ends, the charge for what was delivered is settled and the rest given back, in the
 * same transaction that writes the usage record. A failed or abandoned request is charged 0.
 *
 * Keys without a balance reserve nothing: their request path writes one row, the record.
 */
import type { Principal } from "../auth/principal.ts";
import { insufficientQuota } from "../errors.ts";
import type { ImageJob } from "../images/plan.ts";
import type { TokenUsage } from "../providers/types.ts";
import type { Database, UsageRecord } from "../storage/db/types.ts";
import { chargeMicros, maxCostMicros } from "./cost.ts";
import { microsToUsd } from "./money.ts";
import type { PriceBook } from "./prices.ts";

export interface Accounting {
  /**
   * Reserves the most `job` may cost under the id `reservationId`; returns the amount, or null
   * when the key has no balance to draw on. Throws a 402 when the credit does not cover it.
   * `fallbacks`: jobs that may serve the request instead (a route's fallback models). The
   * reservation covers the dearest when the credit allows, else the job's own cost: a key that
   * can pay for what it asked is never refused because of a fallback it may not get. Fallbacks
   * dearer than what was reserved must then not be used (see `costCeiling`).
   * `standby`: jobs that serve only in a rarer case (a retired model's successor, should the
   * provider answer that the model is gone), covered when the credit allows it over everything
   * else, and never at the expense of the route's fallbacks.
   */
  reserve(
    principal: Principal,
    job: ImageJob,
    reservationId: string,
    now: number,
    fallbacks?: readonly ImageJob[],
    standby?: readonly ImageJob[],
  ): Promise<number | null>;
  /** The most `job` may cost at today's prices, micro-USD. */
  costCeiling(job: ImageJob): number;
  /** Prices what was delivered, settles the reservation, writes the record; returns it. */
  record(entry: {
    record: Omit<UsageRecord, "costMicros">;
    job: ImageJob | undefined;
    usage: TokenUsage | undefined;
    reservedMicros: number | null;
  }): Promise<UsageRecord>;
}

export function createAccounting(options: {
  db: Pick<Database, "reserve" | "settle" | "recordUsage">;
  /** The current price book (admins may change prices while the hub runs). */
  prices: () => PriceBook;
}): Accounting {
  return {
    async reserve(principal, job, reservationId, now, fallbacks = [], standby = []) {
      if (principal.balanceMicros === null) return null;
      const book = options.prices();
      const own = maxCostMicros(job, book);
      const dearest = Math.max(own, ...fallbacks.map((fallback) => maxCostMicros(fallback, book)));
      const withStandby = Math.max(dearest, ...standby.map((other) => maxCostMicros(other, book)));
      const tryReserve = (amountMicros: number) =>
        options.db.reserve({
          id: reservationId,
          keyId: principal.keyId,
          amountMicros,
          createdAt: now,
        });
      if (withStandby > dearest && (await tryReserve(withStandby))) return withStandby;
      if (dearest > own && (await tryReserve(dearest))) return dearest;
      const amountMicros = own;
      const reserved = await tryReserve(own);
      if (!reserved) {
        throw insufficientQuota(
          `This request may cost up to $${microsToUsd(amountMicros)} and the key's credit does ` +
            "not cover it. Ask the hub's admin for more credit, or ask for fewer or smaller images.",
        );
      }
      return amountMicros;
    },
    costCeiling: (job) => maxCostMicros(job, options.prices()),
    async record({ record, job, usage, reservedMicros }) {
      const costMicros =
        job === undefined || record.imagesDelivered === 0
          ? 0
          : chargeMicros({
              job,
              delivered: record.imagesDelivered,
              usage,
              reservedMicros: reservedMicros ?? Number.POSITIVE_INFINITY,
              book: options.prices(),
            });
      const complete: UsageRecord = { ...record, costMicros };
      if (reservedMicros === null) await options.db.recordUsage(complete);
      else await options.db.settle(record.id, complete);
      return complete;
    },
  };
}
