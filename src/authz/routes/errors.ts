/**
 * A problem in the route-rules file. The message is one line, e.g.
 * `KEYWARD_ROUTES_FILE /etc/keyward/routes.yaml: rule 3 (agents): methods: must be a list of HTTP methods`
 * or, for YAML syntax, `KEYWARD_ROUTES_FILE /etc/keyward/routes.yaml: line 4, column 12: …`.
 */
export class RouteRulesError extends Error {
  constructor(
    /** The file (or other source label) given to loadRouteRules / parseRouteRules. */
    readonly source: string,
    /** What is wrong, without the location. */
    readonly problem: string,
    /** Where: the 1-based rule index and its name, the field, or the YAML line. */
    readonly where: { rule?: number; ruleName?: string; field?: string; line?: number; column?: number } = {},
  ) {
    let msg = `KEYWARD_ROUTES_FILE ${source}: `;
    if (where.line !== undefined) msg += `line ${where.line}${where.column !== undefined ? `, column ${where.column}` : ''}: `;
    if (where.rule !== undefined) msg += `rule ${where.rule}${where.ruleName !== undefined ? ` (${where.ruleName})` : ''}: `;
    if (where.field !== undefined) msg += `${where.field}: `;
    super(oneLine(msg + problem));
    this.name = 'RouteRulesError';
  }
}

function oneLine(s: string): string {
  return s.replace(/[\r\n\u2028\u2029]+/g, ' ');
}
