/** Reading the route-rules file: YAML syntax, the top-level shape, unique names. */
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { RouteRulesError } from './errors';
import { RouteTable, type RouteRule } from './table';
import { fieldLabel, validateRule } from './validate';

/**
 * Reads and validates a route-rules file (the format is described in docs/).
 * Throws {@link RouteRulesError} when it cannot be read or is invalid.
 */
export function loadRouteRules(file: string): RouteTable {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new RouteRulesError(file, `cannot read the file: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  return parseRouteRules(text, file);
}

/**
 * Parses and validates route rules from YAML text; `source` names the file in
 * messages. Throws {@link RouteRulesError} on YAML syntax errors (with line and
 * column) and on any invalid rule (with rule index, name and field).
 */
export function parseRouteRules(text: string, source: string): RouteTable {
  const doc = parseDocument(text, { uniqueKeys: true });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem !== undefined) {
    const pos = problem.linePos?.[0];
    const reason =
      'code' in problem && problem.code === 'MULTIPLE_DOCS'
        ? 'the file must hold a single YAML document (found a second ---)'
        : problem.message.replace(/ at line \d+, column \d+:[\s\S]*$/, '');
    throw new RouteRulesError(source, `invalid YAML: ${reason}`, { line: pos?.line, column: pos?.col });
  }
  let data: unknown;
  try {
    data = doc.toJS({ mapAsMap: true });
  } catch (e) {
    throw new RouteRulesError(source, `invalid YAML: ${(e as Error).message}`);
  }

  let list: unknown;
  if (Array.isArray(data)) {
    list = data;
  } else if (data instanceof Map) {
    for (const k of data.keys()) {
      if (k !== 'rules') throw new RouteRulesError(source, 'unknown top-level field; the only one is rules', { field: fieldLabel(k) });
    }
    if (!data.has('rules')) throw new RouteRulesError(source, 'expected a list of rules, or a mapping with rules:');
    list = data.get('rules');
    if (!Array.isArray(list)) throw new RouteRulesError(source, 'must be a list of rules', { field: 'rules' });
  } else if (data === null || data === undefined) {
    throw new RouteRulesError(source, 'the file is empty; expected a list of rules, or a mapping with rules: (write "rules: []" for none)');
  } else {
    throw new RouteRulesError(source, 'expected a list of rules, or a mapping with rules:');
  }

  const rules: RouteRule[] = [];
  const names = new Map<string, number>();
  (list as unknown[]).forEach((raw, i) => {
    const rule = validateRule(raw, i + 1, source);
    if (rule.name !== undefined) {
      const first = names.get(rule.name);
      if (first !== undefined) {
        throw new RouteRulesError(source, `duplicate of rule ${first}; names must be unique`, {
          rule: i + 1,
          ruleName: rule.name,
          field: 'name',
        });
      }
      names.set(rule.name, i + 1);
    }
    rules.push(rule);
  });
  return new RouteTable(rules);
}
