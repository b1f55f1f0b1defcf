// Builds the dashboard into the Python package, where the server's dashboard mount serves it.
// Every asset is also written gzip-compressed (NAME.gz), so the server sends it compressed
// without compressing it again for each browser.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { defineConfig, type Plugin } from "vite";

const OUT = "../src/portolan/server/static";

function precompress(): Plugin {
  return {
    name: "portolan-precompress",
    apply: "build",
    closeBundle() {
      const dir = join(OUT, "assets");
      for (const name of readdirSync(dir)) {
        if (!/\.(js|css|json|svg)$/.test(name)) continue;
        writeFileSync(join(dir, name + ".gz"), gzipSync(readFileSync(join(dir, name)), { level: 9 }));
      }
    },
  };
}

export default defineConfig({
  base: "/",
  plugins: [precompress()],
  build: {
    outDir: OUT,
    emptyOutDir: true,
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 1200,
    sourcemap: false,
  },
  server: {
    proxy: { "/api": "http://127.0.0.1:8080" },
  },
});
