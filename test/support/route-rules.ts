/** Loading route-rules YAML from temporary files, for the route tests. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadRouteRules, RouteRulesError, type RouteTable } from '../../src/authz/routes';

/** Writes the YAML to a fresh temporary file and loads it. */
export function load(yaml: string): { table: RouteTable; file: string } {
  const file = join(mkdtempSync(join(tmpdir(), 'keyward-routes-')), 'routes.yaml');
  writeFileSync(file, yaml);
  return { table: loadRouteRules(file), file };
}

export function errorOf(yaml: string): { error: RouteRulesError; file: string } {
  const file = join(mkdtempSync(join(tmpdir(), 'keyward-routes-')), 'routes.yaml');
  writeFileSync(file, yaml);
  try {
    loadRouteRules(file);
  } catch (e) {
    if (e instanceof RouteRulesError) return { error: e, file };
    throw e;
  }
  throw new Error('expected a RouteRulesError');
}

/** The name of the matching rule, or undefined. */
export function ruleFor(t: RouteTable, path: string, method = 'GET', host = 'api.example.com'): string | undefined {
  return t.match(method, host, path)?.rule;
}
