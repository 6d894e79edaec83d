import { PageHeader } from "../components.tsx";
import type { Session } from "../session.ts";

export function ModelsPage({ session }: { session: Session }) {
  return <PageHeader title="Models">{session.me.name}</PageHeader>;
}
