/**
 * Model routes: how the hub calls a model's upstream, as the admin set it through
 * /api/admin/routes. A route may name an ordered fallback list (another credential, another
 * provider, another model), a time budget, and whether failures that may already have made a
 * billable image are retried. A model with no stored route gets the defaults: no fallbacks,
 * UPSTREAM_TIMEOUT_MS if set (else its catalog timeout), and no retries of billable failures.
 * The admin API checks a route when it is set (http/admin-routes.ts), but a stored route may
 * still name a credential deleted since, or a model a later catalog dropped: callers skip those.
 *
 * Routes are read from the database into memory, since every image request reads one: again
 * after each admin change and every minute, so changes made through another instance arrive.
 */
import type { Database, FallbackTarget, ModelRouteRecord } from "../storage/db/types.ts";

export interface ModelRoute {
  model: string;
  fallbacks: readonly FallbackTarget[];
  /** null: the default (UPSTREAM_TIMEOUT_MS if set, else the catalog's). */
  timeoutMs: number | null;
  retryBillable: boolean;
}

export interface RouteBook {
  /** The route of a catalog model id: the stored one, or the defaults. */
  routeFor(model: string): ModelRoute;
  /** The stored routes, in model id order as the database lists them. */
  list(): ModelRouteRecord[];
  /** Re-reads every route; when that fails, the book keeps the routes it had. */
  reload(): Promise<void>;
}

export function defaultRoute(model: string): ModelRoute {
  return { model, fallbacks: [], timeoutMs: null, retryBillable: false };
}

export function createRouteBook(db: Pick<Database, "listModelRoutes">): RouteBook {
  let routes = new Map<string, ModelRouteRecord>();
  let generation = 0;
  return {
    routeFor: (model) => routes.get(model) ?? defaultRoute(model),
    list: () => [...routes.values()],
    async reload() {
      const mine = ++generation;
      const records = await db.listModelRoutes();
      // Overlapping reloads: the one started last wins, whichever finishes last.
      if (mine === generation) routes = new Map(records.map((record) => [record.model, record]));
    },
  };
}
