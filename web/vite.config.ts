/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The API the dev server forwards to: the Python app on its default port.
const API = "http://127.0.0.1:8000";

export default defineConfig({
  base: "/",
  plugins: [react()],
  build: {
    // The Python side serves this folder at "/" (index.html fallback for client routes).
    outDir: "../consensus_engine/api/static",
    emptyOutDir: true,
    assetsDir: "assets",
  },
  server: {
    proxy: {
      "/v1": { target: API, changeOrigin: false },
      "/health": API,
      "/ready": API,
    },
  },
  test: {
    environment: "node",
    include: ["src/**/*.test.ts"],
  },
});
