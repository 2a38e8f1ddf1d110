/**
 * The console's page: the files `npm run build` bundles from console/ into
 * dist/console-ui/ (index.html and assets/). They are read once, at start; a
 * checkout that was not built serves a short page that says so.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';

export interface StaticFile {
  body: Buffer;
  contentType: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
};

const NOT_BUILT = Buffer.from(
  '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>keyward console</title></head>' +
    '<body><h1>keyward console</h1><p>The console has not been built: run <code>npm run build</code>.</p></body></html>\n',
);

/** Where the built page is: beside the compiled server (dist/), or dist/ of the checkout when run from src/. */
export function consoleUiDir(): string | undefined {
  const candidates = [resolve(__dirname, '..', 'console-ui'), resolve(__dirname, '..', '..', 'dist', 'console-ui')];
  return candidates.find((dir) => existsSync(join(dir, 'index.html')));
}

/** The page's files by URL path (`/`, `/assets/app.js`, ...). */
export function loadConsoleFiles(dir = consoleUiDir()): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  if (!dir) {
    files.set('/', { body: NOT_BUILT, contentType: TYPES['.html']! });
    return files;
  }
  files.set('/', { body: readFileSync(join(dir, 'index.html')), contentType: TYPES['.html']! });
  const assets = join(dir, 'assets');
  if (existsSync(assets)) {
    for (const name of readdirSync(assets)) {
      const type = TYPES[extname(name)];
      if (type) files.set(`/assets/${name}`, { body: readFileSync(join(assets, name)), contentType: type });
    }
  }
  return files;
}
