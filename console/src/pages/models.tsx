/**
 * Models (admin): the provider credentials and their health first (few, and what breaks), then
 * the whole catalog with its status, prices and whether each model can be served here.
 */
import { useEffect, useState } from "preact/hooks";
import { ErrorNotice, PageHeader } from "../components.tsx";
import { Catalog } from "../models/catalog.tsx";
import { Credentials } from "../models/credentials.tsx";
import type { CatalogModel, Credential } from "../models/types.ts";
import type { Session } from "../session.ts";
import { useRefresh } from "../session.ts";
import "../models/models.css";

export function ModelsPage({ session }: { session: Session }) {
  const [models, setModels] = useState<CatalogModel[] | null>(null);
  const [credentials, setCredentials] = useState<Credential[] | null>(null);
  const [modelsError, setModelsError] = useState<unknown>(null);
  const [credentialsError, setCredentialsError] = useState<unknown>(null);
  const [tick, refresh] = useRefresh();

  useEffect(() => {
    const abort = new AbortController();
    session.api
      .call<{ data: CatalogModel[] }>("GET", "/api/admin/models", undefined, abort.signal)
      .then((list) => setModels(list.data))
      .catch((caught) => abort.signal.aborted || setModelsError(caught));
    return () => abort.abort();
  }, [session]);

  useEffect(() => {
    const abort = new AbortController();
    session.api
      .call<{ data: Credential[] }>("GET", "/api/admin/credentials", undefined, abort.signal)
      .then((list) => {
        setCredentials(list.data);
        setCredentialsError(null);
      })
      .catch((caught) => abort.signal.aborted || setCredentialsError(caught));
    return () => abort.abort();
    // tick: a credential test asks for the list again.
  }, [session, tick]);

  const configured = new Set(credentials?.map((credential) => credential.provider));
  const unconfigured = models
    ? [...new Set(models.map((model) => model.provider))]
        .filter((provider) => provider !== "local" && !configured.has(provider))
        .sort()
    : [];

  return (
    <>
      <PageHeader title="Models" />
      <ErrorNotice error={credentialsError} />
      {credentials && (
        <Credentials
          session={session}
          credentials={credentials}
          unconfigured={unconfigured}
          onTested={refresh}
        />
      )}
      <ErrorNotice error={modelsError} />
      {models === null && modelsError === null && (
        <p class="muted" aria-busy="true">
          Loading the catalog…
        </p>
      )}
      {models && <Catalog models={models} />}
    </>
  );
}
