import { PageHeader } from "../components.tsx";
import type { Session } from "../session.ts";

export function UsagePage({ session }: { session: Session }) {
  return <PageHeader title="Usage">{session.me.name}</PageHeader>;
}
