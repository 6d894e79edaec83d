/**
 * Accounting when the price book has a hole in it (an admin removed a row): a key with a
 * balance is refused before anything is reserved, an unpriced fallback is left out, and a key
 * without a limit is served at no charge with one warning per model. And topping a reservation
 * up (for a gone model's successor): asked of the database only when there is something to take.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Principal } from "../../src/auth/principal.ts";
import { createAccounting } from "../../src/billing/accounting.ts";
import { SEED_IMAGE_PRICES, SEED_TOKEN_PRICES } from "../../src/billing/price-list.ts";
import { createPriceBook } from "../../src/billing/prices.ts";
import { isHubError } from "../../src/errors.ts";
import { createCatalog } from "../../src/images/catalog.ts";
import { type ImageJob, planImageJob } from "../../src/images/plan.ts";
import type { Reservation, UsageRecord } from "../../src/storage/db/types.ts";

const catalog = createCatalog();

function jobOf(model: string, size: string, quality?: string, n = 1): ImageJob {
  return planImageJob(
    catalog,
    { prompt: "a lighthouse", model, size, quality, n },
    { defaultModel: "dall-e-3", isProviderConfigured: () => true },
  );
}

/** The seed book without dall-e-2's 1024x1024 row. */
const holed = createPriceBook(
  SEED_IMAGE_PRICES.filter((row) => !(row.model === "dall-e-2" && row.size === "1024x1024")),
  SEED_TOKEN_PRICES,
);

function principalWith(balanceMicros: number | null): Principal {
  const common = { name: "k", role: "client", models: null, rpm: null, ipm: null } as const;
  return { keyId: "key1", ...common, balanceMicros };
}

function setUp(options: { topUpSucceeds?: boolean } = {}) {
  const reservations: Reservation[] = [];
  const topUps: Array<{ reservationId: string; toMicros: number }> = [];
  const written: UsageRecord[] = [];
  const warnings: Record<string, unknown>[] = [];
  const accounting = createAccounting({
    db: {
      reserve: async (reservation) => {
        reservations.push(reservation);
        return true;
      },
      topUpReservation: async (reservationId, toMicros) => {
        topUps.push({ reservationId, toMicros });
        return options.topUpSucceeds ?? true;
      },
      settle: async (_id, record) => {
        written.push(record);
      },
      recordUsage: async (record) => {
        written.push(record);
      },
    },
    prices: () => holed,
    log: { warn: (details) => warnings.push(details) },
  });
  return { accounting, reservations, topUps, written, warnings };
}

function recordOf(job: ImageJob, delivered: number): Omit<UsageRecord, "costMicros"> {
  return {
    id: `r${Math.random()}`,
    keyId: "key1",
    model: job.model.id,
    requestedModel: null,
    app: null,
    provider: job.model.provider,
    imagesRequested: job.n,
    imagesDelivered: delivered,
    size: job.size ?? "auto",
    quality: job.quality ?? null,
    responseFormat: "b64_json",
    status: "succeeded",
    errorCode: null,
    latencyMs: 1,
    upstreamLatencyMs: 1,
    inputTokens: null,
    outputTokens: null,
    createdAt: 0,
  };
}

describe("accounting with a price missing", () => {
  test("a key with a balance gets 400 model_not_priced, naming the model, and reserves nothing", async () => {
    const { accounting, reservations } = setUp();
    const job = jobOf("dall-e-2", "1024x1024");
    await assert.rejects(
      accounting.reserve(principalWith(1_000_000), job, "r1", 0),
      (error: unknown) =>
        isHubError(error) &&
        error.status === 400 &&
        error.code === "model_not_priced" &&
        error.type === "invalid_request_error" &&
        /'dall-e-2'.*size 1024x1024 and quality standard/.test(error.message) &&
        /PUT \/api\/admin\/prices\/image/.test(error.message),
    );
    assert.deepEqual(reservations, []);
    // Other sizes keep their price.
    assert.equal(
      await accounting.reserve(principalWith(1_000_000), jobOf("dall-e-2", "512x512"), "r2", 0),
      18_000,
    );
  });

  test("an unpriced fallback is left out of the reservation and has no ceiling", async () => {
    const { accounting, reservations } = setUp();
    const own = jobOf("dall-e-3", "1024x1024", "standard");
    const fallback = jobOf("dall-e-2", "1024x1024");
    const reserved = await accounting.reserve(principalWith(1_000_000), own, "r1", 0, [fallback]);
    assert.equal(reserved, 40_000);
    assert.deepEqual(
      reservations.map((reservation) => reservation.amountMicros),
      [40_000],
    );
    assert.equal(accounting.costCeiling(fallback), Number.POSITIVE_INFINITY);
    assert.equal(accounting.costCeiling(own), 40_000);
  });

  test("a key without a limit is served: charged 0, one warning per model", async () => {
    const { accounting, written, warnings } = setUp();
    const job = jobOf("dall-e-2", "1024x1024", undefined, 2);
    assert.equal(await accounting.reserve(principalWith(null), job, "r1", 0), null);
    for (let index = 0; index < 3; index++) {
      const record = await accounting.record({
        record: recordOf(job, 2),
        job,
        usage: undefined,
        reservedMicros: null,
      });
      assert.equal(record.costMicros, 0);
    }
    assert.equal(written.length, 3);
    assert.equal(warnings.length, 1, "once per model, not once per request");
    assert.equal(warnings[0]?.model, "dall-e-2");
    assert.equal(warnings[0]?.unlimitedKey, true);

    // A priced model warns nothing.
    const priced = jobOf("dall-e-2", "512x512");
    await accounting.record({
      record: recordOf(priced, 1),
      job: priced,
      usage: undefined,
      reservedMicros: null,
    });
    assert.equal(warnings.length, 1);
    assert.equal(written.at(-1)?.costMicros, 18_000);
  });
});

describe("topping a reservation up", () => {
  test("goes to the database with the amount to reach, and says what it answered", async () => {
    const covered = setUp({ topUpSucceeds: true });
    assert.equal(await covered.accounting.topUp(principalWith(1_000_000), "r1", 53_000), true);
    assert.deepEqual(covered.topUps, [{ reservationId: "r1", toMicros: 53_000 }]);
    const refused = setUp({ topUpSucceeds: false });
    assert.equal(await refused.accounting.topUp(principalWith(10), "r1", 53_000), false);
    assert.equal(refused.topUps.length, 1);
  });

  test("a key without a balance needs none; an unpriced job cannot have one", async () => {
    const { accounting, topUps } = setUp();
    assert.equal(await accounting.topUp(principalWith(null), "r1", Number.POSITIVE_INFINITY), true);
    const unpriced = accounting.costCeiling(jobOf("dall-e-2", "1024x1024"));
    assert.equal(await accounting.topUp(principalWith(1_000_000), "r1", unpriced), false);
    assert.deepEqual(topUps, [], "the database is not asked");
  });
});
