/**
 * Usage: what keys asked for and what it cost, per day and per model, with the requests
 * themselves. Admins see every key (and may pick one); a client key sees its own, and its
 * balance. The filters live in the address so a link shows the same view.
 */
import { useEffect, useMemo, useState } from "preact/hooks";
import { ErrorNotice, PageHeader } from "../components.tsx";
import { hrefOf, queryOf } from "../router.ts";
import type { Me, Session } from "../session.ts";
import { DayChart, sum } from "../usage/day-chart.tsx";
import { type KeyOption, UsageFilters } from "../usage/filters.tsx";
import { ModelChart } from "../usage/model-chart.tsx";
import { Records } from "../usage/records.tsx";
import { UsageSummary } from "../usage/summary.tsx";
import {
  addressQuery,
  apiQuery,
  daySeries,
  type Filters,
  filtersFromQuery,
  type UsageList,
  utcDate,
} from "../usage/types.ts";
import "../usage/usage.css";

export function UsagePage({ session }: { session: Session }) {
  const isAdmin = session.me.role === "admin";
  // A client key sees only its own usage: a key in a shared link would only earn it a 403.
  const [filters, setFilters] = useState<Filters>(() => {
    const read = filtersFromQuery(queryOf());
    return isAdmin ? read : { ...read, key: "" };
  });
  const [usage, setUsage] = useState<UsageList | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [keys, setKeys] = useState<KeyOption[] | null>(null);
  const [models, setModels] = useState<string[]>([]);
  const [me, setMe] = useState<Me>(session.me);
  const [exporting, setExporting] = useState(false);
  const [exportError, setExportError] = useState<unknown>(null);

  useEffect(() => {
    history.replaceState(history.state, "", hrefOf("usage", addressQuery(filters)));
    const abort = new AbortController();
    setError(null);
    session.api
      .call<UsageList>("GET", `/api/usage${apiQuery(filters, true)}`, undefined, abort.signal)
      .then(setUsage)
      .catch((caught) => {
        if (abort.signal.aborted) return;
        setError(caught);
        setUsage(null);
      });
    return () => abort.abort();
  }, [session, filters]);

  // What fills the choices; the page works without them.
  useEffect(() => {
    const abort = new AbortController();
    const { signal } = abort;
    session.api
      .call<{ data: { id: string }[] }>("GET", "/api/models", undefined, signal)
      .then((list) => setModels(list.data.map((model) => model.id)))
      .catch(() => {});
    if (isAdmin) {
      session.api
        .call<{ data: { id: string; name: string; revoked_at: number | null }[] }>(
          "GET",
          "/api/admin/keys",
          undefined,
          signal,
        )
        .then((list) => setKeys(keyOptions(session.me, list.data)))
        .catch(() => setKeys(keyOptions(session.me, [])));
    } else {
      // The balance as it is now, not as it was at sign-in.
      session.api
        .call<Me>("GET", "/api/me", undefined, signal)
        .then(setMe)
        .catch(() => {});
    }
    return () => abort.abort();
  }, [session, isAdmin]);

  const keyNames = useMemo(
    () => (keys ? new Map(keys.map((key) => [key.id, key.name])) : null),
    [keys],
  );
  const days = useMemo(
    () => (usage ? daySeries(usage.totals.by_day, filters.from, filters.to) : []),
    [usage, filters.from, filters.to],
  );

  const exportCsv = async () => {
    setExporting(true);
    setExportError(null);
    try {
      await session.api.download(
        `/api/usage/export${apiQuery(filters, false)}`,
        `image-hub-usage-${utcDate()}.csv`,
      );
    } catch (caught) {
      setExportError(caught);
    } finally {
      setExporting(false);
    }
  };

  return (
    <>
      <PageHeader title="Usage">
        <button type="button" onClick={exportCsv} disabled={exporting}>
          Export CSV
        </button>
      </PageHeader>
      <ErrorNotice error={exportError} />
      <UsageSummary
        totals={usage ? sum(usage.totals.by_day) : null}
        balance={isAdmin ? undefined : me.balance}
      />
      <UsageFilters
        filters={filters}
        onChange={setFilters}
        keys={isAdmin ? (keys ?? []) : null}
        models={models}
      />
      <ErrorNotice error={error} />
      {usage && (
        <>
          <div class="usage-charts">
            <DayChart days={days} />
            <ModelChart models={usage.totals.by_model} />
          </div>
          <Records
            rows={usage.data}
            total={sum(usage.totals.by_day).requests}
            offset={filters.offset}
            keyNames={isAdmin ? (keyNames ?? new Map()) : null}
            onPage={(offset) => setFilters({ ...filters, offset })}
          />
        </>
      )}
    </>
  );
}

/** Every key to filter by, the signed-in one included (ADMIN_KEY is not in the key list). */
function keyOptions(
  me: Me,
  list: { id: string; name: string; revoked_at: number | null }[],
): KeyOption[] {
  const options = list.map((key) => ({
    id: key.id,
    name: key.name,
    revoked: key.revoked_at !== null,
  }));
  if (!options.some((key) => key.id === me.id)) {
    options.unshift({ id: me.id, name: me.name, revoked: false });
  }
  return options;
}
