import { defineConfig } from 'vite';

export default defineConfig({
  // Keep the package out of Vite's dependency pre-bundling in development, so its glue finds
  // the .wasm next to itself (`new URL('sandlot_bg.wasm', import.meta.url)`). Builds need nothing.
  optimizeDeps: { exclude: ['sandlot'] },
  build: { target: 'es2022' },
});
