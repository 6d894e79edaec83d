/**
 * The console's shell: sign-in with an API key, then the pages behind real links. An admin key
 * sees every page; a client key sees its own work, and the admin pages say they are not for it.
 */
import { useEffect, useState } from "preact/hooks";
import { ApiError, createApi } from "./api.ts";
import { AdminOnly } from "./components.tsx";
import { GalleryPage } from "./pages/gallery.tsx";
import { KeysPage } from "./pages/keys.tsx";
import { ModelsPage } from "./pages/models.tsx";
import { PlaygroundPage } from "./pages/playground.tsx";
import { SignIn } from "./pages/sign-in.tsx";
import { UsagePage } from "./pages/usage.tsx";
import { hrefOf, type Page, usePage } from "./router.ts";
import { forgetKey, type Me, type Session, storedKey, storeKey } from "./session.ts";

const LINKS: { page: Page; label: string; admin: boolean }[] = [
  { page: "playground", label: "Playground", admin: false },
  { page: "gallery", label: "Gallery", admin: false },
  { page: "keys", label: "Keys", admin: true },
  { page: "usage", label: "Usage", admin: false },
  { page: "models", label: "Models", admin: true },
];

export function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [checking, setChecking] = useState(() => storedKey() !== null);
  const page = usePage();

  const signIn = async (key: string, remember: boolean) => {
    const api = createApi(key);
    const me = await api.call<Me>("GET", "/api/me");
    storeKey(key, remember);
    setSession({ key, me, api });
  };

  // A key kept from before is checked again: it may have been revoked or rotated since.
  useEffect(() => {
    const key = storedKey();
    if (!key) return;
    signIn(key, false)
      .catch((error: unknown) => {
        if (error instanceof ApiError && error.status === 401) forgetKey();
      })
      .finally(() => setChecking(false));
  }, []);

  useEffect(() => {
    const label = LINKS.find((link) => link.page === page)?.label;
    document.title = session && label ? `${label} · image-hub` : "image-hub";
  }, [page, session]);

  if (checking) return <main class="signin" aria-busy="true" />;
  if (!session) return <SignIn onSignIn={signIn} />;

  const isAdmin = session.me.role === "admin";
  const signOut = () => {
    forgetKey();
    setSession(null);
  };
  const adminPage = LINKS.find((link) => link.page === page)?.admin ?? false;

  return (
    <div class="shell">
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <a class="brand" href={hrefOf("playground")} aria-label="image-hub home">
          <img src="./favicon.svg" alt="" width="24" height="24" />
          <span>image-hub</span>
        </a>
        <nav aria-label="Console">
          <ul>
            {LINKS.filter((link) => isAdmin || !link.admin).map((link) => (
              <li key={link.page}>
                <a href={hrefOf(link.page)} aria-current={page === link.page ? "page" : undefined}>
                  {link.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="whoami">
          <span title={`key ${session.me.id}`}>
            {session.me.name} <span class="role">{session.me.role}</span>
          </span>
          <button type="button" class="link-button" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {adminPage && !isAdmin ? <AdminOnly /> : <Current page={page} session={session} />}
      </main>
    </div>
  );
}

function Current({ page, session }: { page: Page; session: Session }) {
  switch (page) {
    case "playground":
      return <PlaygroundPage session={session} />;
    case "gallery":
      return <GalleryPage session={session} />;
    case "keys":
      return <KeysPage session={session} />;
    case "usage":
      return <UsagePage session={session} />;
    case "models":
      return <ModelsPage session={session} />;
  }
}
