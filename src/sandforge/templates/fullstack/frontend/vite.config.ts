import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// node_modules is a read-only template cache in the sandbox, so Vite keeps its cache here.
// Requests to /api go to the FastAPI backend on port 8000, so the page calls its own origin.
export default defineConfig({
  plugins: [react()],
  cacheDir: ".vite",
  server: {
    host: "127.0.0.1",
    port: 3000,
    strictPort: true,
    proxy: { "/api": "http://127.0.0.1:8000" },
  },
});
