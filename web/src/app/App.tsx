// The shell: checks the stored key, shows sign-in when there is none, and otherwise the
// header, the current page and the live region.

import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { createClient } from "../api/client";
import { api } from "../api/endpoints";
import { errorMessage } from "../api/errors";
import type { Options } from "../api/types";
import { sessionKeyStore } from "../auth/keyStore";
import { SignIn } from "../pages/SignIn";
import { AppContext, type AppContextValue } from "./context";
import { Header } from "./Header";
import { Page } from "./Page";

const REVOKED = "Your API key was not accepted any more. Sign in again.";

type Auth =
  | { state: "checking" }
  | { state: "signedOut"; message: string | null }
  | { state: "signedIn"; tenant: string };

export function App() {
  const store = useMemo(() => sessionKeyStore(), []);
  const [auth, setAuth] = useState<Auth>(() =>
    store.get() ? { state: "checking" } : { state: "signedOut", message: null },
  );
  const [announcement, setAnnouncement] = useState("");
  const optionsRef = useRef<Promise<Options> | null>(null);
  const justSignedIn = useRef(false);

  // The sign-in form is gone: start keyboard and screen-reader users at the page.
  useEffect(() => {
    if (auth.state !== "signedIn" || !justSignedIn.current) return;
    justSignedIn.current = false;
    document.querySelector<HTMLElement>("main h1")?.focus();
  }, [auth]);

  const signOut = useCallback(
    (message?: string) => {
      store.clear();
      optionsRef.current = null;
      setAuth({ state: "signedOut", message: message ?? null });
    },
    [store],
  );

  const client = useMemo(
    () =>
      createClient({
        getKey: () => store.get(),
        onUnauthorized: () => signOut(REVOKED),
      }),
    [store, signOut],
  );

  // A key from earlier in this tab: find out whose it is (and whether it still works).
  useEffect(() => {
    if (auth.state !== "checking") return;
    api.me(client).then(
      (me) => setAuth({ state: "signedIn", tenant: me.tenant }),
      (error: unknown) => {
        // A 401 already signed out through onUnauthorized.
        if (store.get()) signOut(errorMessage(error));
      },
    );
  }, [auth.state, client, signOut, store]);

  const signIn = useCallback(
    async (key: string) => {
      const me = await api.me(client, key);
      store.set(key);
      justSignedIn.current = true;
      setAuth({ state: "signedIn", tenant: me.tenant });
    },
    [client, store],
  );

  const announce = useCallback((message: string) => {
    // Clear first so that the same words said twice are announced twice.
    setAnnouncement("");
    window.setTimeout(() => setAnnouncement(message), 50);
  }, []);

  const context = useMemo<AppContextValue | null>(() => {
    if (auth.state !== "signedIn") return null;
    return {
      client,
      tenant: auth.tenant,
      announce,
      signOut,
      loadOptions: () => {
        if (!optionsRef.current) {
          optionsRef.current = api.options(client).catch((error: unknown) => {
            optionsRef.current = null;
            throw error;
          });
        }
        return optionsRef.current;
      },
    };
  }, [auth, client, announce, signOut]);

  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      {context ? (
        <AppContext.Provider value={context}>
          <Header />
          <main id="main" tabIndex={-1}>
            <Page />
          </main>
        </AppContext.Provider>
      ) : (
        <main id="main" tabIndex={-1}>
          {auth.state === "checking" ? (
            <p role="status">Checking your API key…</p>
          ) : (
            <SignIn onSignIn={signIn} message={auth.state === "signedOut" ? auth.message : null} />
          )}
        </main>
      )}
      <div className="visually-hidden" aria-live="polite" aria-atomic="true">
        {announcement}
      </div>
    </>
  );
}
