/** Small pieces every page uses: the API's errors as the API gives them, money, dates. */
import type { ComponentChildren } from "preact";
import { ApiError } from "./api.ts";

/** An error shown as the API gave it: its message, and its code and param when it has them. */
export function ErrorNotice({ error }: { error: unknown }) {
  if (error === null || error === undefined) return null;
  if (error instanceof ApiError) {
    const { message, code, param, type } = error.body;
    return (
      <div class="notice error" role="alert">
        <strong>{message}</strong>
        <div class="error-meta">
          {error.status > 0 && <span>HTTP {error.status}</span>}
          <code>{code ?? type}</code>
          {param && (
            <span>
              param <code>{param}</code>
            </span>
          )}
        </div>
      </div>
    );
  }
  return (
    <div class="notice error" role="alert">
      <strong>{error instanceof Error ? error.message : String(error)}</strong>
    </div>
  );
}

export function Notice({ children }: { children: ComponentChildren }) {
  return (
    <div class="notice" role="status">
      {children}
    </div>
  );
}

/** USD with enough places for sub-cent prices ($0.011), and whole cents otherwise. */
export function usd(amount: number | null | undefined): string {
  if (amount === null || amount === undefined) return "—";
  const places = amount !== 0 && Math.abs(amount) < 0.1 ? 4 : 2;
  return `$${amount.toFixed(places).replace(/(\.\d\d\d*?)0+$/, "$1")}`;
}

/** Unix seconds as a local date and time. */
export function when(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return "—";
  return new Date(seconds * 1000).toLocaleString();
}

/** A page's title and the actions beside it. */
export function PageHeader({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <header class="page-header">
      <h1>{title}</h1>
      {children && <div class="page-actions">{children}</div>}
    </header>
  );
}

/** What a client key sees on an admin page. */
export function AdminOnly() {
  return (
    <Notice>
      This page is for admin keys. Your key sees its own work in the Playground, Gallery and Usage.
    </Notice>
  );
}
