// Light, dark, or the system's choice; the choice is not secret, so localStorage is fine.

import { useEffect, useState } from "react";

type Theme = "system" | "light" | "dark";
const NEXT: Record<Theme, Theme> = { system: "light", light: "dark", dark: "system" };
const STORAGE = "consensus-engine.theme";

function stored(): Theme {
  try {
    const value = localStorage.getItem(STORAGE);
    return value === "light" || value === "dark" ? value : "system";
  } catch {
    return "system";
  }
}

export function ThemeToggle() {
  const [theme, setTheme] = useState<Theme>(stored);
  useEffect(() => {
    const root = document.documentElement;
    if (theme === "system") root.removeAttribute("data-theme");
    else root.setAttribute("data-theme", theme);
    try {
      if (theme === "system") localStorage.removeItem(STORAGE);
      else localStorage.setItem(STORAGE, theme);
    } catch {
      // storage blocked: the choice lasts for this page only
    }
  }, [theme]);
  return (
    <button type="button" className="button-secondary" onClick={() => setTheme(NEXT[theme])}>
      Theme: {theme}
    </button>
  );
}
