// Bundles the dashboard's browser app (web/) with esbuild into
// dist/dashboard/, which the hub serves (src/hub/dashboard/server.ts):
// index.html, app.js (Preact + Chart.js, minified) and app.css.
import { copyFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = `${root}dist/dashboard`;
mkdirSync(out, { recursive: true });
const result = await build({
  entryPoints: { app: `${root}web/src/main.tsx`, 'app-style': `${root}web/src/app.css` },
  bundle: true,
  format: 'esm',
  target: ['chrome120', 'firefox120', 'safari17'],
  minify: true,
  sourcemap: 'linked',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outdir: out,
  entryNames: '[name]',
  metafile: true,
  logLevel: 'warning',
});
copyFileSync(`${root}web/index.html`, `${out}/index.html`);
const bytes = Object.entries(result.metafile.outputs).filter(([f]) => !f.endsWith('.map')).map(([f, o]) => `${f.replace(`${root}`, '')} ${Math.round(o.bytes / 1024)} KiB`);
process.stdout.write(`dashboard built: ${bytes.join(', ')}\n`);
