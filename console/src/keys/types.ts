import { usd } from "../components.tsx";

/** An API key as the admin API shows it, and the form values that create or change one. */

export interface ApiKey {
  id: string;
  object: "api_key";
  name: string;
  role: "client" | "admin";
  models: string[] | null;
  rpm: number | null;
  ipm: number | null;
  balance: number | null;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
}

/** What create and rotate answer: the key with its secret, shown this once. */
export interface IssuedKey extends ApiKey {
  key: string;
}

/** The fields a form edits, as typed (strings), so an empty field can mean "no limit". */
export interface KeyDraft {
  name: string;
  role: "client" | "admin";
  balance: string;
  models: string[];
  rpm: string;
  ipm: string;
}

export function draftOf(key?: ApiKey): KeyDraft {
  return {
    name: key?.name ?? "",
    role: key?.role ?? "client",
    balance: key?.balance === null || key?.balance === undefined ? "" : String(key.balance),
    models: key?.models ?? [],
    rpm: key?.rpm ? String(key.rpm) : "",
    ipm: key?.ipm ? String(key.ipm) : "",
  };
}

/** An empty field is "no limit" (null); anything else is sent as typed for the API to judge. */
function numberOrNull(text: string): number | null {
  const trimmed = text.trim();
  return trimmed === "" ? null : Number(trimmed);
}

/** The body of `POST /api/admin/keys`. */
export function createBody(draft: KeyDraft) {
  return {
    name: draft.name.trim(),
    role: draft.role,
    balance: numberOrNull(draft.balance),
    models: draft.models.length === 0 ? null : draft.models,
    rpm: numberOrNull(draft.rpm),
    ipm: numberOrNull(draft.ipm),
  };
}

/**
 * The body of `PATCH /api/admin/keys/{id}`: only what changed, so saving a name does not set the
 * balance back to what the form showed while the key went on spending.
 */
export function patchBody(key: ApiKey, draft: KeyDraft): Record<string, unknown> {
  const wanted = createBody(draft);
  const body: Record<string, unknown> = {};
  if (wanted.name !== key.name) body.name = wanted.name;
  if (wanted.balance !== key.balance) body.balance = wanted.balance;
  if (JSON.stringify(wanted.models) !== JSON.stringify(key.models)) body.models = wanted.models;
  if (wanted.rpm !== key.rpm) body.rpm = wanted.rpm;
  if (wanted.ipm !== key.ipm) body.ipm = wanted.ipm;
  return body;
}

export function balanceText(balance: number | null): string {
  return balance === null ? "unlimited" : usd(balance);
}
