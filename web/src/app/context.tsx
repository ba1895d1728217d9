// What every signed-in page needs: the API client, the tenant, the options, and the
// live region that announces progress.

import { createContext, useContext } from "react";
import type { ApiClient } from "../api/client";
import type { Options } from "../api/types";

export interface AppContextValue {
  client: ApiClient;
  tenant: string;
  /** Loads /v1/options once per sign-in. */
  loadOptions: () => Promise<Options>;
  /** Says something through the polite aria-live region. */
  announce: (message: string) => void;
  signOut: (message?: string) => void;
}

export const AppContext = createContext<AppContextValue | null>(null);

export function useApp(): AppContextValue {
  const value = useContext(AppContext);
  if (!value) throw new Error("useApp outside of the signed-in app");
  return value;
}
