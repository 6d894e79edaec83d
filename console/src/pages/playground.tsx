import { PageHeader } from "../components.tsx";
import type { Session } from "../session.ts";

export function PlaygroundPage({ session }: { session: Session }) {
  return <PageHeader title="Playground">{session.me.name}</PageHeader>;
}
