/**
 * One provider credential: its health in colour and words, and a Test button that asks the hub
 * to try it (a free call where the provider has one) and shows the answer in the row.
 */
import { useState } from "preact/hooks";
import { ErrorNotice } from "../components.tsx";
import type { Session } from "../session.ts";
import { type Credential, type CredentialTest, clock } from "./types.ts";

export function CredentialRow({
  session,
  credential,
  onTested,
}: {
  session: Session;
  credential: Credential;
  onTested: () => void;
}) {
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<CredentialTest | null>(null);
  const [error, setError] = useState<unknown>(null);

  const test = async () => {
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      const path = `/api/admin/credentials/${encodeURIComponent(credential.id)}/test`;
      setResult(await session.api.call<CredentialTest>("POST", path));
      // A test can change the credential's health (a refused key is quarantined).
      onTested();
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };

  return (
    <tr>
      <th scope="row">
        {credential.name}
        <div class="muted models-small">
          <code>{credential.id}</code>
        </div>
      </th>
      <td data-label="Key">
        <code>{credential.key}</code>
      </td>
      <td data-label="Base URL" class="models-url">
        {credential.base_url ?? <span class="muted">default</span>}
      </td>
      <td data-label="Weight" class="number">
        {credential.weight}
      </td>
      <td data-label="Source">{credential.source}</td>
      <td data-label="Health">
        <Health credential={credential} />
      </td>
      <td class="models-test">
        <button
          type="button"
          onClick={test}
          disabled={busy}
          aria-describedby={`test-${credential.id}`}
        >
          Test
        </button>
        <div id={`test-${credential.id}`} role="status" class="models-test-result">
          {busy && <span class="muted">testing…</span>}
          {result && <TestResult result={result} />}
        </div>
        <ErrorNotice error={error} />
      </td>
    </tr>
  );
}

function Health({ credential }: { credential: Credential }) {
  const { status, status_until: until, status_detail: detail, last_error: lastError } = credential;
  switch (status) {
    case "active":
      return <span class="status-ok">active</span>;
    case "cooling_down":
      return (
        <span class="status-warn">
          cooling down{until ? ` until ${clock(until)}` : ""}
          {detail && <div class="models-small">{detail}</div>}
        </span>
      );
    case "auth_failed":
      return (
        <span class="status-bad">
          quarantined: {lastError ?? detail ?? "the provider refused it"}
          {until && <div class="models-small">tried again at {clock(until)}</div>}
        </span>
      );
    case "disabled":
      return <span class="muted">disabled</span>;
    case "undecryptable":
      return (
        <span class="status-bad">
          undecryptable: stored under another MASTER_KEY
          {detail && <div class="models-small">{detail}</div>}
        </span>
      );
  }
}

function TestResult({ result }: { result: CredentialTest }) {
  const latency = result.latency_ms === null ? "" : ` in ${result.latency_ms} ms`;
  if (result.ok === true) return <span class="status-ok">✓ works{latency}</span>;
  if (result.ok === false) {
    return (
      <span class="status-bad">
        ✗ failed{latency}: {result.detail ?? result.status}
      </span>
    );
  }
  return <span class="muted">not tested: {result.detail ?? "the provider has no free call"}</span>;
}
