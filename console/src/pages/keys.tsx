import { PageHeader } from "../components.tsx";
import type { Session } from "../session.ts";

export function KeysPage({ session }: { session: Session }) {
  return <PageHeader title="Keys">{session.me.name}</PageHeader>;
}
