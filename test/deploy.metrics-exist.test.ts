/**
 * The shipped Grafana dashboard (deploy/grafana/keyward.json) and Prometheus alert rules
 * (deploy/prometheus/keyward-alerts.yaml) against a real keyward:
 *  - the dashboard is importable JSON: uid, title, a DS_PROMETHEUS data-source variable
 *    that every panel and query uses, unique panel ids, a query in every panel;
 *  - the rules file is a `groups:` rules file; every rule has a severity and a summary,
 *    and the rules are exactly the rows of docs/operations.md's alerts table (each
 *    rule's `documented_as` annotation names its row);
 *  - every keyward_* metric named in the dashboard's queries, the rules' expressions and
 *    the docs' alerts table is served on /metrics by keyward on PostgreSQL (so the
 *    change-notification gauges exist) with TLS on its operations port (so the per-port
 *    TLS series exist), after a Check and a KeyAdmin call (so the counters labelled by
 *    outcome code have series). A histogram's `_bucket`, `_sum` and `_count` must belong to a family
 *    of type histogram; every name must have at least one sample.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { startHarness, type Harness } from './support/harness';
import { createPki, writePair, type TestPki } from './support/certs';
import { EnvoyClient } from './support/envoy-client';
import { httpsGet } from './support/tls-clients';

const root = join(__dirname, '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: { expr: string; refId: string; datasource?: { uid: string } }[];
  panels?: Panel[];
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown; datasource?: { uid: string } }[] };
}
interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

const dashboard = JSON.parse(read('deploy/grafana/keyward.json')) as Dashboard;
const rulesFile = parseYaml(read('deploy/prometheus/keyward-alerts.yaml')) as { groups: { name: string; rules: Rule[] }[] };
const rules = rulesFile.groups.flatMap((g) => g.rules);
const allPanels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const queries = allPanels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));

/** The rows of the "Alerts worth setting" table in docs/operations.md: name and expression cell. */
function documentedAlerts(): { name: string; expression: string }[] {
  const doc = read('docs/operations.md');
  const section = doc.slice(doc.indexOf('## Alerts worth setting'));
  const body = section.slice(0, section.indexOf('\n## ', 1));
  return body
    .split('\n')
    .filter((l) => l.startsWith('| ') && !l.startsWith('| alert ') && !l.startsWith('| ---'))
    .map((l) => {
      const [first = '', expression = ''] = l.split(' | ');
      return { name: first.slice(2).trim(), expression };
    });
}

/** Whether an expression's (), [] and {} pair up (outside string literals): a cheap PromQL syntax check. */
function balanced(expr: string): boolean {
  const open: string[] = [];
  const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
  for (const c of expr.replace(/"(?:[^"\\]|\\.)*"/g, '""')) {
    if (c === '(' || c === '[' || c === '{') open.push(c);
    else if (c in pairs && open.pop() !== pairs[c]) return false;
  }
  return open.length === 0;
}

/** keyward_* metric names in a PromQL expression (string literals, such as label values, left out). */
function metricNames(expr: string): string[] {
  const bare = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  return [...bare.matchAll(/(?<![A-Za-z0-9_:])keyward_[a-zA-Z0-9_:]+/g)].map((m) => m[0]);
}

/** The families (`# TYPE` lines) and the names that have samples in an exposition. */
function exposition(text: string): { families: Map<string, string>; sampled: Set<string> } {
  const families = new Map<string, string>();
  const sampled = new Set<string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) families.set(type[1]!, type[2]!);
    else if (line && !line.startsWith('#')) sampled.add(/^[^{ ]+/.exec(line)![0]);
  }
  return { families, sampled };
}

/** The family a series name belongs to, or why it belongs to none. */
function familyOf(name: string, families: Map<string, string>): { family: string } | { problem: string } {
  if (families.has(name)) {
    const type = families.get(name)!;
    return type === 'histogram' || type === 'summary'
      ? { problem: `${name} is a ${type}: query _bucket, _sum or _count` }
      : { family: name };
  }
  const suffix = /_(bucket|sum|count)$/.exec(name);
  if (suffix) {
    const base = name.slice(0, -suffix[0].length);
    const type = families.get(base);
    if (type === 'histogram' || (type === 'summary' && suffix[1] !== 'bucket')) return { family: base };
    if (type) return { problem: `${name}: ${base} is a ${type}, not a histogram` };
  }
  return { problem: `${name} is not served on /metrics` };
}

describe('the Grafana dashboard', () => {
  it('is importable: uid, title, a DS_PROMETHEUS data-source variable, unique panel ids', () => {
    expect(dashboard.uid).toMatch(/^[a-zA-Z0-9_-]{1,40}$/);
    expect(dashboard.title).toBe('keyward');
    const ds = dashboard.templating.list.find((v) => v.name === 'DS_PROMETHEUS');
    expect(ds).toMatchObject({ type: 'datasource', query: 'prometheus' });
    const ids = allPanels.map((p) => p.id);
    expect(ids.every((id) => Number.isInteger(id) && id > 0)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('has a query in every panel, each on the DS_PROMETHEUS data source', () => {
    const graphs = allPanels.filter((p) => p.type !== 'row');
    expect(graphs.length).toBeGreaterThanOrEqual(20);
    for (const p of graphs) {
      expect({ panel: p.title, datasource: p.datasource?.uid }).toEqual({ panel: p.title, datasource: '${DS_PROMETHEUS}' });
      expect(p.targets?.length).toBeGreaterThan(0);
      for (const t of p.targets!) {
        expect({ expr: t.expr, balanced: balanced(t.expr) }).toEqual({ expr: t.expr, balanced: true });
        expect(t.datasource?.uid).toBe('${DS_PROMETHEUS}');
      }
      const refIds = p.targets!.map((t) => t.refId);
      expect(new Set(refIds).size).toBe(refIds.length);
    }
  });

  it('covers Checks, latency, cache, limiter, quota, usage, journal, webhooks, TLS and process', () => {
    const named = new Set(queries.flatMap(metricNames));
    for (const m of [
      'keyward_check_decisions_total',
      'keyward_check_duration_seconds_bucket',
      'keyward_cache_hits_total',
      'keyward_ratelimit_limited_total',
      'keyward_usage_buffer_depth',
      'keyward_usage_journal_pending_events',
      'keyward_webhook_delivered_total',
      'keyward_tls_certificate_not_after_seconds',
      'keyward_tls_reloads_total',
      'keyward_process_cpu_seconds_total',
    ])
      expect(named).toContain(m);
    expect(queries.some((q) => q.includes('monthly_quota_exceeded'))).toBe(true);
    expect(queries.some((q) => q.startsWith('histogram_quantile(0.99,'))).toBe(true);
  });
});

describe('the Prometheus alert rules', () => {
  it('are a groups: rules file whose rules each have an expression, a severity and a summary', () => {
    expect(rulesFile.groups.length).toBeGreaterThan(0);
    for (const g of rulesFile.groups) expect(g.name).toMatch(/\S/);
    const names = rules.map((r) => r.alert);
    expect(new Set(names).size).toBe(names.length);
    for (const r of rules) {
      expect(r.alert).toMatch(/^Keyward[A-Za-z0-9]+$/);
      expect({ expr: r.expr, balanced: balanced(r.expr) }).toEqual({ expr: r.expr, balanced: true });
      expect(['critical', 'warning', 'info']).toContain(r.labels?.severity);
      expect(r.annotations?.summary).toMatch(/\S/);
      if (r.for !== undefined) expect(r.for).toMatch(/^\d+[smh]$/);
    }
  });

  it('are exactly the alerts documented in docs/operations.md, one rule per row', () => {
    const documented = documentedAlerts().map((a) => a.name);
    expect(documented.length).toBeGreaterThanOrEqual(10);
    expect(rules.map((r) => r.annotations?.documented_as).sort()).toEqual([...documented].sort());
  });

  it('use the metrics their documented row names', () => {
    for (const a of documentedAlerts()) {
      const rule = rules.find((r) => r.annotations?.documented_as === a.name)!;
      expect({ alert: a.name, metrics: [...new Set(metricNames(rule.expr))].sort() }).toEqual({
        alert: a.name,
        metrics: [...new Set(metricNames(a.expression))].sort(),
      });
    }
  });
});

describe('every metric the dashboard, the rules and the alerts table name', () => {
  let h: Harness;
  let dir: string;
  let pki: TestPki;
  let envoy: EnvoyClient;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keyward-deploy-metrics-'));
    pki = createPki('deploy-metrics');
    const http = writePair(join(dir, 'http'), 'tls', pki.server);
    h = await startHarness('postgres', { httpListen: '127.0.0.1:0', tls: { http, reloadSeconds: 10 } });
    envoy = new EnvoyClient(h.app.authzPort);
  });
  afterAll(async () => {
    envoy.close();
    await h.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is served with samples on /metrics by keyward on PostgreSQL with TLS', async () => {
    await h.root.createOrganization({ name: 'Metrics' });
    await envoy.check({}); // missing_api_key
    const scrape = await httpsGet(h.app.httpPort!, '/metrics', { ca: pki.ca.cert });
    expect(scrape.status).toBe(200);
    const { families, sampled } = exposition(scrape.body);
    const used = new Map<string, string>();
    for (const q of queries) for (const m of metricNames(q)) used.set(m, 'dashboard');
    for (const r of rules) for (const m of metricNames(r.expr)) used.set(m, `rule ${r.alert}`);
    for (const a of documentedAlerts()) for (const m of metricNames(a.expression)) used.set(m, `docs: ${a.name}`);
    expect(used.size).toBeGreaterThanOrEqual(40);
    const problems: string[] = [];
    for (const [name, where] of used) {
      const f = familyOf(name, families);
      if ('problem' in f) problems.push(`${where}: ${f.problem}`);
      else if (!sampled.has(name)) problems.push(`${where}: ${name} has no sample`);
    }
    expect(problems).toEqual([]);
  });

  it('finds the names a query hides in its selectors and suffixes', () => {
    expect(metricNames('sum by (le) (rate(keyward_check_duration_seconds_bucket{code="keyward_x"}[5m]))')).toEqual([
      'keyward_check_duration_seconds_bucket',
    ]);
    const families = new Map([
      ['keyward_check_duration_seconds', 'histogram'],
      ['keyward_cache_entries', 'gauge'],
    ]);
    expect(familyOf('keyward_check_duration_seconds_count', families)).toEqual({ family: 'keyward_check_duration_seconds' });
    expect(familyOf('keyward_check_duration_seconds', families)).toHaveProperty('problem');
    expect(familyOf('keyward_cache_entries_count', families)).toHaveProperty('problem');
    expect(familyOf('keyward_cache_missing_total', families)).toHaveProperty('problem');
    expect(balanced('sum(rate(keyward_x{code="a)"}[5m]))')).toBe(true);
    expect(balanced('sum(rate(keyward_x[5m])')).toBe(false);
    expect(balanced('sum(rate(keyward_x[5m)])')).toBe(false);
  });
});
