/**
 * docs/configuration.md is generated from the settings table (npm run docs:config) and
 * must match it; the table names every KEYWARD_* variable the source mentions.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONFIGURATION_DOC, renderConfigurationDoc } from '../src/config/doc';
import { SETTINGS, type Setting } from '../src/config/settings';

const ROOT = join(__dirname, '..');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'gen' ? [] : sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

describe('the settings table', () => {
  it(`matches ${CONFIGURATION_DOC} (run npm run docs:config after changing it)`, () => {
    expect(readFileSync(join(ROOT, CONFIGURATION_DOC), 'utf8')).toBe(renderConfigurationDoc());
  });

  it('names every KEYWARD_* variable that src/ mentions', () => {
    const known = new Set<string>();
    for (const [name, setting] of Object.entries(SETTINGS) as [string, Setting][]) {
      known.add(name);
      if (setting.file) known.add(`${name}_FILE`);
    }
    const mentioned = new Set<string>();
    for (const file of sourceFiles(join(ROOT, 'src'))) {
      for (const match of readFileSync(file, 'utf8').matchAll(/KEYWARD_[A-Z0-9_]*[A-Z0-9]/g)) mentioned.add(match[0]);
    }
    expect([...mentioned].filter((name) => !known.has(name))).toEqual([]);
  });

  it('gives every variable a one-line description and a default that its own schema accepts', () => {
    for (const [name, setting] of Object.entries(SETTINGS) as [string, Setting][]) {
      expect({ name, oneLine: !setting.description.includes('\n') && setting.description.length > 0 }).toEqual({ name, oneLine: true });
      if (setting.default !== undefined) {
        expect({ name, ok: setting.schema.safeParse(setting.default).success }).toEqual({ name, ok: true });
      }
    }
  });
});
