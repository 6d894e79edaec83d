/**
 * The prices in force: the seed list (providers' list prices) written to the database once,
 * then whatever admins change. The hub prices requests from a book in memory, rebuilt after
 * each change here and every minute, so that prices edited on another instance arrive too.
 */
import type { Database, ImagePrice, TokenPrice } from "../storage/db/types.ts";
import { SEED_IMAGE_PRICES, SEED_TOKEN_PRICES } from "./price-list.ts";
import { createPriceBook, type PriceBook } from "./prices.ts";

const REFRESH_INTERVAL_MS = 60_000;

export interface PriceService {
  book(): PriceBook;
  reload(): Promise<void>;
  putImagePrice(price: ImagePrice): Promise<void>;
  putTokenPrice(price: TokenPrice): Promise<void>;
  deleteImagePrice(model: string, size: string, quality: string): Promise<boolean>;
  stop(): void;
}

export async function createPriceService(db: Database): Promise<PriceService> {
  await db.seedPrices(SEED_IMAGE_PRICES, SEED_TOKEN_PRICES);
  let book = createPriceBook(await db.listImagePrices(), await db.listTokenPrices());
  const reload = async () => {
    book = createPriceBook(await db.listImagePrices(), await db.listTokenPrices());
  };
  const timer = setInterval(() => reload().catch(() => {}), REFRESH_INTERVAL_MS);
  timer.unref();
  return {
    book: () => book,
    reload,
    async putImagePrice(price) {
      await db.putImagePrice(price);
      await reload();
    },
    async putTokenPrice(price) {
      await db.putTokenPrice(price);
      await reload();
    },
    async deleteImagePrice(model, size, quality) {
      const deleted = await db.deleteImagePrice(model, size, quality);
      await reload();
      return deleted;
    },
    stop: () => clearInterval(timer),
  };
}
