// The API key lives in sessionStorage: it lasts for this tab only and is never
// written anywhere else.

const KEY = "consensus-engine.api-key";

export interface KeyStore {
  get(): string | null;
  set(key: string): void;
  clear(): void;
}

export function sessionKeyStore(storage: Storage | null = safeSessionStorage()): KeyStore {
  let memory: string | null = null; // when storage is blocked, the key lasts until reload
  return {
    get: () => (storage ? storage.getItem(KEY) : memory),
    set: (key) => {
      if (storage) storage.setItem(KEY, key);
      else memory = key;
    },
    clear: () => {
      if (storage) storage.removeItem(KEY);
      memory = null;
    },
  };
}

function safeSessionStorage(): Storage | null {
  try {
    return typeof sessionStorage === "undefined" ? null : sessionStorage;
  } catch {
    return null;
  }
}
