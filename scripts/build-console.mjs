// Builds the web console (console/) into dist/console-ui: one JS bundle, one CSS file and
// index.html, all served from the same origin (no CDN, no inline script or style: strict CSP).
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'console-ui');
const assets = join(out, 'assets');
mkdirSync(assets, { recursive: true });

await build({
  entryPoints: [join(root, 'console', 'src', 'main.tsx')],
  outfile: join(assets, 'app.js'),
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2022'],
  platform: 'browser',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  legalComments: 'eof', // the bundled libraries' licence notices stay with their code
  logLevel: 'warning',
});

// uPlot's stylesheet first, so that the console's own rules win.
const require = createRequire(import.meta.url);
const uplotCss = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
const appCss = readFileSync(join(root, 'console', 'app.css'), 'utf8');
const css = await build({
  stdin: { contents: `${uplotCss}\n${appCss}`, loader: 'css', resolveDir: join(root, 'console') },
  bundle: true,
  minify: true,
  write: false,
  logLevel: 'warning',
});
writeFileSync(join(assets, 'app.css'), css.outputFiles[0].text);

copyFileSync(join(root, 'console', 'index.html'), join(out, 'index.html'));
