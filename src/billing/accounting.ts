/**
 * Reservation accounting, between the pipeline and the ledger. Before any provider is called,
 * the most a request can cost is taken from the key's credit (a 402 if it cannot be); when the
 * request ends, the charge for what was delivered is settled and the rest given back, in the
 * same transaction that writes the usage record. A failed or abandoned request is charged 0.
 *
 * A retired model's successor, which serves only when the provider answers that the model is
 * gone, is not reserved for up front: it is dearer than some models it stands in for (dall-e-2),
 * and credit held for it would refuse concurrent requests of the same key that the credit
 * covers. The reservation is topped up to it when it is needed (`topUp`).
 *
 * Keys without a balance reserve nothing: their request path writes one row, the record.
 *
 * A model the price book has no price for (an admin deleted the row) is refused to keys with a
 * balance before any provider is called (400 `model_not_priced`): there is nothing to reserve
 * against. Keys without a limit are still served, charged 0, and the operator is warned in the
 * log once per model. A free model is a price of 0, not a missing one.
 */
import type { Principal } from "../auth/principal.ts";
import { insufficientQuota, modelNotPriced } from "../errors.ts";
import type { ImageJob } from "../images/plan.ts";
import type { TokenUsage } from "../providers/types.ts";
import type { Database, LostRequest, UsageRecord } from "../storage/db/types.ts";
import { chargeMicros, maxCostMicros } from "./cost.ts";
import { microsToUsd } from "./money.ts";
import type { PriceBook } from "./prices.ts";

export interface Accounting {
  /**
   * Reserves the most `job` may cost under the id `reservationId`; returns the amount, or null
   * when the key has no balance to draw on. Throws a 402 when the credit does not cover it, and
   * a 400 `model_not_priced` when the book has no price for the job (nothing to reserve against).
   * `fallbacks`: jobs that may serve the request instead (a route's fallback models). The
   * reservation covers the dearest when the credit allows, else the job's own cost: a key that
   * can pay for what it asked is never refused because of a fallback it may not get. Fallbacks
   * dearer than what was reserved, or without a price, must then not be used (see
   * `costCeiling`).
   * A retired model's successor is not among them: see `topUp`.
   */
  reserve(
    principal: Principal,
    job: ImageJob,
    reservationId: string,
    now: number,
    fallbacks?: readonly ImageJob[],
  ): Promise<number | null>;
  /**
   * Raises the reservation `reservationId` to `toMicros` (a job's `costCeiling`), taking the
   * difference from the key's credit only if the credit covers it; false, and nothing changed,
   * when it does not or when `toMicros` is infinite (no price). For a job that serves only when
   * it is needed, such as a gone model's successor. Keys without a balance need no top-up.
   */
  topUp(principal: Principal, reservationId: string, toMicros: number): Promise<boolean>;
  /**
   * The most `job` may cost at today's prices, micro-USD; infinite when the book has no price
   * for it, so no reservation covers it.
   */
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
  db: Pick<Database, "reserve" | "topUpReservation" | "settle" | "recordUsage">;
  /** The current price book (admins may change prices while the hub runs). */
  prices: () => PriceBook;
  /** Told, once per model, when delivered images had no price to charge. */
  log?: { warn(details: Record<string, unknown>, message: string): void };
  /** This hub instance, written on each reservation (its heartbeat vouches for them). */
  instanceId?: string;
}): Accounting {
  // Models already warned about: an unpriced model an unlimited key uses all day is one line.
  const warnedUnpriced = new Set<string>();

  /**
   * A key without a limit is served a model that has no price (charged 0), and a key with one
   * whose price row went between reserving and settling is charged its reservation's share:
   * either way the operator should hear that a price is missing.
   */
  function warnIfUnpriced(
    job: ImageJob,
    usage: TokenUsage | undefined,
    reservedMicros: number | null,
    costMicros: number,
    book: PriceBook,
  ): void {
    const model = job.model.id;
    if (warnedUnpriced.has(model)) return;
    if (book.perImageMicros(model, job.size, job.quality) !== undefined) return;
    if (usage && book.tokenPrice(model)) return;
    warnedUnpriced.add(model);
    options.log?.warn(
      {
        model,
        size: job.size ?? "auto",
        quality: job.quality ?? null,
        costMicros,
        unlimitedKey: reservedMicros === null,
      },
      "images delivered without a price: set one with PUT /api/admin/prices/image (usd 0 for free); until then keys with a balance are refused the model at that size and quality",
    );
  }

  return {
    async reserve(principal, job, reservationId, now, fallbacks = []) {
      if (principal.balanceMicros === null) return null;
      const book = options.prices();
      const own = maxCostMicros(job, book);
      if (own === undefined) throw modelNotPriced(job.model.id, job.size, job.quality);
      // An unpriced fallback is left out of the reservation, and so is never used (costCeiling).
      const dearest = Math.max(own, ...fallbacks.map((other) => maxCostMicros(other, book) ?? 0));
      const tryReserve = (amountMicros: number) =>
        options.db.reserve({
          id: reservationId,
          keyId: principal.keyId,
          amountMicros,
          createdAt: now,
          instanceId: options.instanceId,
          request: lostRequestOf(job),
        });
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
    async topUp(principal, reservationId, toMicros) {
      if (principal.balanceMicros === null) return true;
      if (!Number.isFinite(toMicros)) return false;
      return options.db.topUpReservation(reservationId, toMicros);
    },
    costCeiling: (job) => maxCostMicros(job, options.prices()) ?? Number.POSITIVE_INFINITY,
    async record({ record, job, usage, reservedMicros }) {
      const book = options.prices();
      let costMicros = 0;
      if (job !== undefined && record.imagesDelivered > 0) {
        costMicros = chargeMicros({
          job,
          delivered: record.imagesDelivered,
          usage,
          reservedMicros: reservedMicros ?? Number.POSITIVE_INFINITY,
          book,
        });
        warnIfUnpriced(job, usage, reservedMicros, costMicros, book);
      }
      const complete: UsageRecord = { ...record, costMicros };
      if (reservedMicros === null) await options.db.recordUsage(complete);
      else await options.db.settle(record.id, complete);
      return complete;
    },
  };
}

/** What the ledger says of a request lost with its hub (released by another, charged 0). */
function lostRequestOf(job: ImageJob): LostRequest {
  return {
    model: job.model.id,
    requestedModel: job.substitutedFor?.id ?? null,
    app: null,
    provider: job.model.provider,
    imagesRequested: job.n,
    size: job.size ?? "auto",
    quality: job.quality ?? null,
    responseFormat: job.responseFormat,
  };
}
