/**
 * A real browser for the console's tests: Debian's chromium driven by playwright-core,
 * headless, with nothing reaching out to the network by itself.
 */
import { accessSync, constants, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { recordSkip } from './skips';

export const CHROMIUM_PATH = process.env.KEYWARD_TEST_CHROMIUM ?? '/usr/bin/chromium';

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * A fresh context (own cookies and storage) whose page fails the test on any console
 * error or CSP violation: the returned `problems` lists them.
 */
export async function newPage(browser: Browser, baseURL: string): Promise<{ context: BrowserContext; page: Page; problems: string[] }> {
  const context = await browser.newContext({ baseURL, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // Failed calls the test provokes (401, 403, 404) are logged by chromium as resource errors: not problems.
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push(`console error: ${m.text()}`);
  });
  return { context, page, problems };
}

/** The built page the console serves (npm run build). */
export const CONSOLE_UI_DIR = join(__dirname, '..', '..', 'dist', 'console-ui');

export const SCREENSHOT_DIR = join(__dirname, '..', '..', 'test-results', 'console');
export const DOCS_IMAGE_DIR = join(__dirname, '..', '..', 'docs', 'images');

/**
 * Saves a full-page screenshot to test-results/console/<name>.png; with
 * KEYWARD_CONSOLE_DOC_IMAGES=1 also to docs/images/console-<name>.png.
 */
export async function screenshot(page: Page, name: string, opts: { docs?: boolean } = {}): Promise<void> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
  if (opts.docs && process.env.KEYWARD_CONSOLE_DOC_IMAGES === '1') {
    mkdirSync(DOCS_IMAGE_DIR, { recursive: true });
    await page.screenshot({ path: join(DOCS_IMAGE_DIR, `console-${name}.png`), fullPage: true });
  }
}

// The page's globals are not in this project's lib (no DOM): these run as expressions in the page.

/** Everything script-readable storage holds, to check that no secret is kept there. */
export function storageOf(page: Page): Promise<{ local: string; session: string; cookie: string }> {
  return page.evaluate(
    '({ local: JSON.stringify({ ...localStorage }), session: JSON.stringify({ ...sessionStorage }), cookie: document.cookie })',
  );
}

/** The page's whole DOM text, including the values of inputs (which outerHTML does not show). */
export function domText(page: Page): Promise<string> {
  return page.evaluate(
    `[document.documentElement.outerHTML, document.body.innerText,
      ...[...document.querySelectorAll('input, textarea')].map((e) => e.value)].join('\\n')`,
  );
}

/**
 * Calls the console API from inside the page (its cookie, its origin), like a script
 * the tenant could run; returns the status and the JSON body.
 */
export function fetchFromPage(
  page: Page,
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: unknown } = {},
): Promise<{ status: number; body: { error?: { code?: string; field?: string } } & Record<string, unknown> }> {
  return page.evaluate(
    async ([p, i]) => {
      const r = await fetch(p, {
        method: i.method ?? 'POST',
        headers: i.headers,
        body: i.body === undefined ? undefined : JSON.stringify(i.body),
        credentials: 'same-origin',
      });
      const text = await r.text();
      return { status: r.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
    },
    [path, init] as const,
  );
}

/** KEYWARD_REQUIRE_BROWSER: 1 or true (any case) make a missing chromium a failure; unset, empty, 0 or false a skip. */
export function browserRequired(env: NodeJS.ProcessEnv = process.env): boolean {
  const value = (env.KEYWARD_REQUIRE_BROWSER ?? '').trim().toLowerCase();
  if (value === '1' || value === 'true') return true;
  if (value === '' || value === '0' || value === 'false') return false;
  throw new Error(`KEYWARD_REQUIRE_BROWSER must be 1, true, 0 or false, not ${JSON.stringify(env.KEYWARD_REQUIRE_BROWSER)}`);
}

/**
 * describe() when chromium is installed and the console is built; otherwise a failing
 * test (KEYWARD_REQUIRE_BROWSER) or a recorded skip.
 */
export function describeBrowser(name: string, fn: () => void): void {
  const missing: string[] = [];
  try {
    accessSync(CHROMIUM_PATH, constants.X_OK);
  } catch {
    missing.push(`no chromium at ${CHROMIUM_PATH} (apt-get install chromium, or set KEYWARD_TEST_CHROMIUM)`);
  }
  if (!existsSync(join(CONSOLE_UI_DIR, 'index.html')) || !existsSync(join(CONSOLE_UI_DIR, 'assets', 'app.js'))) {
    missing.push('the console is not built (npm run build)');
  }
  if (missing.length === 0) {
    describe(name, fn);
    return;
  }
  const reason = missing.join('; ');
  if (browserRequired()) {
    describe(name, () => {
      it('has a browser and the built console', () => {
        throw new Error(`the console's browser tests are required (KEYWARD_REQUIRE_BROWSER) but cannot run: ${reason}`);
      });
    });
    return;
  }
  console.warn(`Skipping "${name}": ${reason}`);
  recordSkip(name, `${reason}; set KEYWARD_REQUIRE_BROWSER=1 to fail instead`);
  describe.skip(name, fn);
}

/** Form controls on the page without a label (a <label for>, a wrapping label or aria-label): should be none. */
export function unlabelledControls(page: Page): Promise<string[]> {
  return page.evaluate(
    `[...document.querySelectorAll('input, select, textarea')]
      .filter((e) => e.type !== 'hidden' && e.labels.length === 0 && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
      .map((e) => e.outerHTML)`,
  );
}
