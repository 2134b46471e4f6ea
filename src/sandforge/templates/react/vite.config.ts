import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// node_modules is a read-only template cache in the sandbox, so Vite keeps its cache here.
export default defineConfig({
  plugins: [react()],
  cacheDir: ".vite",
  server: { host: "127.0.0.1", port: 3000, strictPort: true },
});
