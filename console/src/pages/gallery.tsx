import { PageHeader } from "../components.tsx";
import type { Session } from "../session.ts";

export function GalleryPage({ session }: { session: Session }) {
  return <PageHeader title="Gallery">{session.me.name}</PageHeader>;
}
