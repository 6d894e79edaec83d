/** Provider credentials grouped by provider, with their health; and what to do when none. */
import type { Session } from "../session.ts";
import { CredentialRow } from "./credential-row.tsx";
import type { Credential } from "./types.ts";

export function Credentials({
  session,
  credentials,
  unconfigured,
  onTested,
}: {
  session: Session;
  credentials: Credential[];
  /** Providers of the catalog with no credential, to say which could be added. */
  unconfigured: string[];
  onTested: () => void;
}) {
  const providers = [...new Set(credentials.map((credential) => credential.provider))].sort();
  return (
    <section aria-labelledby="models-credentials-title">
      <h2 id="models-credentials-title">Providers and credentials</h2>
      {credentials.length === 0 && (
        <div class="notice" role="note">
          <strong>No provider credentials:</strong> set <code>OPENAI_API_KEY</code> (or{" "}
          <code>GEMINI_API_KEY</code>, another provider's key) in the hub's environment and restart
          it, or add one with <code>POST /api/admin/credentials</code> (needs{" "}
          <code>MASTER_KEY</code>). README.md, “Provider credentials”, shows how. Until then only{" "}
          <code>local/placeholder</code> makes images.
        </div>
      )}
      {providers.map((provider) => {
        const own = credentials.filter((credential) => credential.provider === provider);
        return (
          <div class="models-provider-group" key={provider}>
            <h3>
              {provider}{" "}
              <span class="muted models-small">
                {own.length} credential{own.length === 1 ? "" : "s"}
              </span>
            </h3>
            <div class="table-wrap">
              <table class="models-credentials">
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Key</th>
                    <th scope="col">Base URL</th>
                    <th scope="col" class="number">
                      Weight
                    </th>
                    <th scope="col">Source</th>
                    <th scope="col">Health</th>
                    <th scope="col">Test</th>
                  </tr>
                </thead>
                <tbody>
                  {own.map((credential) => (
                    <CredentialRow
                      key={credential.id}
                      session={session}
                      credential={credential}
                      onTested={onTested}
                    />
                  ))}
                </tbody>
              </table>
            </div>
          </div>
        );
      })}
      {unconfigured.length > 0 && (
        <p class="muted models-small">
          Providers of the catalog without credentials: {unconfigured.join(", ")}.
        </p>
      )}
    </section>
  );
}
