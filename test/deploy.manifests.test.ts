/**
 * The deployment files stay in step with the code: every YAML file under deploy/ parses
 * and each manifest has apiVersion, kind and metadata; each keyward container's
 * environment (its *_FILE secrets given real files) is a configuration keyward accepts,
 * while the placeholder Secrets are refused; probes, ports and the security context
 * match what the image and the server provide; the route-rules ConfigMaps load; Envoy's
 * bootstrap points at keyward's listen address; and the Dockerfile's entry point, user,
 * listen addresses and health check match package.json and the CLI.
 */
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseAllDocuments, parse } from 'yaml';
import { ConfigError, loadConfig } from '../src/config';
import { parseRouteRules } from '../src/authz/routes';
import type { Volume, Container, PodSpec, Manifest, Cluster, Bootstrap } from './support/deploy-types';

const ROOT = join(__dirname, '..');
const DEPLOY = join(ROOT, 'deploy');
/** Not Kubernetes manifests: Prometheus rules (checked by deploy.metrics-exist.test.ts). */
const NOT_MANIFESTS = new Set([join(DEPLOY, 'prometheus')]);

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (NOT_MANIFESTS.has(p)) return [];
    if (statSync(p).isDirectory()) return yamlFiles(p);
    return /\.ya?ml$/.test(name) ? [p] : [];
  });
}

function docsOf(file: string): Manifest[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'), { uniqueKeys: true });
  for (const d of docs) {
    const problem = d.errors[0] ?? d.warnings[0];
    if (problem) throw new Error(`${relative(ROOT, file)}: ${problem.message}`);
  }
  return docs.map((d) => d.toJS() as Manifest | null).filter((d) => d !== null);
}

const FILES = yamlFiles(DEPLOY);
const ALL = FILES.flatMap((file) => docsOf(file).map((doc) => ({ file: relative(ROOT, file), doc })));
const byKind = (kind: string, dir: string) => ALL.filter((m) => m.doc.kind === kind && m.file.startsWith(dir));
const one = (kind: string, dir: string, name?: string) => {
  const found = byKind(kind, dir).filter((m) => name === undefined || m.doc.metadata.name === name);
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''} in ${dir}, found ${found.length}`);
  return found[0]!.doc;
};

/** The secret files' realistic contents, by Secret key. */
const SECRET_VALUES: Record<string, string> = {
  'database-url': 'postgres://keyward:s3cret@postgres.db.svc.cluster.local:5432/keyward?sslmode=require\n',
  'redis-url': 'redis://:s3cret@redis.db.svc.cluster.local:6379/0\n',
  'hash-secret': `${'ab'.repeat(32)}\n`,
  'admin-token': `${'c'.repeat(48)}\n`,
};

/**
 * A container's environment as keyward would see it: its `env` values, with each file
 * under a mounted volume replaced by a temporary file holding `content(volume, key)`.
 */
function containerEnv(
  pod: PodSpec,
  container: Container,
  content: (volume: Volume, key: string) => string | undefined,
): Record<string, string> {
  const dir = mkdtempSync(join(tmpdir(), 'keyward-deploy-'));
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) {
    let value = String(e.value);
    const mount = (container.volumeMounts ?? []).find((m) => value.startsWith(`${m.mountPath}/`));
    if (mount) {
      const volume = pod.volumes.find((v) => v.name === mount.name)!;
      const key = value.slice(mount.mountPath.length + 1);
      const text = content(volume, key);
      if (text === undefined) throw new Error(`${e.name}: nothing in volume ${mount.name} for ${key}`);
      value = join(dir, key.replace(/\//g, '_'));
      writeFileSync(value, text);
    }
    env[e.name] = value;
  }
  // Relative paths (the data directory) resolve in a scratch working directory.
  if (!env.KEYWARD_DATABASE_URL_FILE && !env.KEYWARD_DATABASE_URL) env.KEYWARD_DATABASE_URL = `sqlite:${join(dir, 'data', 'keyward.db')}`;
  if (env.KEYWARD_USAGE_JOURNAL_DIR === undefined) env.KEYWARD_USAGE_JOURNAL_DIR = join(dir, 'data', 'usage-journal');
  return env;
}

function configMapFile(dir: string) {
  return (volume: Volume, key: string): string | undefined => {
    if (volume.secret) {
      const secretKey = (volume.secret.items ?? []).find((i) => i.path === key)?.key ?? key;
      return SECRET_VALUES[secretKey];
    }
    if (volume.configMap) return one('ConfigMap', dir, volume.configMap.name).data[key];
    return undefined;
  };
}

function keywardPods(dir: string): { name: string; pod: PodSpec; container: Container }[] {
  return ALL.filter((m) => m.file.startsWith(dir) && (m.doc.kind === 'Deployment' || m.doc.kind === 'Job')).flatMap((m) => {
    const pod = m.doc.spec.template.spec;
    return pod.containers
      .filter((c) => String(c.image).includes('/keyward:'))
      .map((container) => ({ name: `${String(m.doc.kind)} ${m.doc.metadata.name}`, pod, container }));
  });
}

describe('deploy/ manifests', () => {
  it('finds the layouts', () => {
    const names = FILES.map((f) => relative(DEPLOY, f));
    expect(names).toEqual(
      expect.arrayContaining(['kubernetes/sidecar/deployment.yaml', 'kubernetes/shared/deployment.yaml', 'istio/mesh-config.yaml']),
    );
  });

  it('parses every file, and every manifest has apiVersion, kind and metadata.name', () => {
    expect(ALL.length).toBeGreaterThan(FILES.length - 1);
    for (const { file, doc } of ALL) {
      expect({ file, apiVersion: typeof doc.apiVersion, kind: typeof doc.kind, name: typeof doc.metadata?.name }).toEqual({
        file,
        apiVersion: 'string',
        kind: 'string',
        name: 'string',
      });
    }
  });

  it.each([['deploy/kubernetes/sidecar'], ['deploy/kubernetes/shared']])(
    '%s: kustomization lists existing files, but not the placeholder Secret',
    (dir) => {
      const k = one('Kustomization', dir);
      for (const r of k.resources) expect(existsSync(join(ROOT, dir, r))).toBe(true);
      expect(k.resources).not.toContain('secret.yaml');
      expect(k.resources).not.toContain('mesh-config.yaml');
    },
  );

  it.each([['deploy/kubernetes/sidecar'], ['deploy/kubernetes/shared']])(
    '%s: each keyward container has a configuration keyward accepts',
    (dir) => {
      const pods = keywardPods(dir);
      expect(pods.map((p) => p.name).sort()).toEqual(['Deployment ' + one('Deployment', dir).metadata.name, 'Job keyward-migrate'].sort());
      for (const { pod, container } of pods) {
        const env = containerEnv(pod, container, configMapFile(dir));
        const c = loadConfig(env);
        expect(c.database.kind).toBe('postgres');
        expect(c.hashSecretSource).toBe('file');
        if (container.args[0] === 'serve') {
          expect(c.adminToken).toBe('c'.repeat(48));
          expect(c.authz.redisUrl).toBe(SECRET_VALUES['redis-url']!.trim());
          expect(c.autoMigrate).toBe(false);
        } else {
          expect(container.args).toEqual(['migrate']);
        }
      }
    },
  );

  it.each([['deploy/kubernetes/sidecar'], ['deploy/kubernetes/shared']])(
    '%s: the placeholder Secret is refused at start, naming the variable',
    (dir) => {
      const secret = one('Secret', dir);
      const serve = keywardPods(dir).find((p) => p.container.args[0] === 'serve')!;
      const env = containerEnv(serve.pod, serve.container, (volume, key) =>
        volume.secret ? secret.stringData[key] : configMapFile(dir)(volume, key),
      );
      let error: unknown;
      try {
        loadConfig(env);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).variable).toMatch(/^KEYWARD_(HASH_SECRET|ADMIN_TOKEN)_FILE$/);
    },
  );

  it.each([['deploy/kubernetes/sidecar'], ['deploy/kubernetes/shared']])(
    '%s: probes, ports, the data volume and the security context fit the image',
    (dir) => {
      for (const { name, pod, container } of keywardPods(dir)) {
        const sc = { ...pod.securityContext, ...container.securityContext };
        expect({
          name,
          runAsNonRoot: sc.runAsNonRoot,
          runAsUser: sc.runAsUser,
          ro: sc.readOnlyRootFilesystem,
          esc: sc.allowPrivilegeEscalation,
          drop: sc.capabilities?.drop,
        }).toEqual({
          name,
          runAsNonRoot: true,
          runAsUser: 10001,
          ro: true,
          esc: false,
          drop: ['ALL'],
        });
        // Secret files readable by the group keyward runs with.
        expect(pod.securityContext.fsGroup).toBe(10001);
        if (container.args[0] !== 'serve') continue;
        const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value]));
        const httpPort = Number(
          String(env.KEYWARD_HTTP_LISTEN ?? '0.0.0.0:9193')
            .split(':')
            .pop(),
        );
        const portByName = (n: string) => container.ports.find((p) => p.name === n)?.containerPort;
        expect(portByName(container.readinessProbe.httpGet.port)).toBe(httpPort);
        expect(portByName(container.livenessProbe.httpGet.port)).toBe(httpPort);
        expect(container.readinessProbe.httpGet.path).toBe('/readyz');
        expect(container.livenessProbe.httpGet.path).toBe('/healthz');
        // The kubelet probes the pod's address, so the operations port must not be loopback.
        expect(env.KEYWARD_HTTP_LISTEN === undefined || String(env.KEYWARD_HTTP_LISTEN).startsWith('0.0.0.0:')).toBe(true);
        const data = container.volumeMounts?.find((m) => m.mountPath === '/app/data');
        expect(data?.readOnly).not.toBe(true);
        expect(pod.volumes.find((v) => v.name === data?.name)?.emptyDir).toBeDefined();
        expect(container.resources.requests).toBeDefined();
        expect(container.resources.limits.memory).toBeDefined();
      }
    },
  );
});

describe('the sidecar layout', () => {
  const dir = 'deploy/kubernetes/sidecar';

  it("Envoy's bootstrap sends the Check and the access log to keyward's listen address, and routes to the application", () => {
    const deployment = one('Deployment', dir);
    const pod = deployment.spec.template.spec;
    const keyward = pod.containers.find((c) => c.name === 'keyward')!;
    const envoy = pod.containers.find((c) => c.name === 'envoy')!;
    const env = Object.fromEntries((keyward.env ?? []).map((e) => [e.name, e.value]));
    expect(env.KEYWARD_AUTHZ_LISTEN).toBe('127.0.0.1:9191');

    const cm = one('ConfigMap', dir, pod.volumes.find((v) => v.configMap)!.configMap!.name);
    const mount = envoy.volumeMounts!.find((m) => m.name === 'envoy-config')!;
    const configFile = envoy.command[envoy.command.indexOf('-c') + 1]!;
    expect(configFile.startsWith(`${mount.mountPath}/`)).toBe(true);
    const bootstrap = parse(cm.data[configFile.slice(mount.mountPath.length + 1)]!, { uniqueKeys: true }) as Bootstrap;

    const clusters = new Map<string, Cluster>(bootstrap.static_resources.clusters.map((c) => [c.name, c]));
    const address = (name: string) => {
      const a = clusters.get(name)!.load_assignment.endpoints[0]!.lb_endpoints[0]!.endpoint.address.socket_address;
      return `${a.address}:${a.port_value}`;
    };
    const listener = bootstrap.static_resources.listeners[0]!;
    const hcm = listener.filter_chains[0]!.filters[0]!.typed_config;
    const authz = hcm.http_filters.find((f) => f.name === 'envoy.filters.http.ext_authz')!.typed_config;
    expect(address(authz.grpc_service.envoy_grpc.cluster_name)).toBe(env.KEYWARD_AUTHZ_LISTEN);
    expect(authz.failure_mode_allow).toBe(false);
    expect(clusters.get('keyward_authz')!.typed_extension_protocol_options).toBeDefined(); // HTTP/2
    const als = hcm.access_log.find((l) => l.name === 'envoy.access_loggers.http_grpc')!.typed_config;
    expect(address(als.common_config.grpc_service.envoy_grpc.cluster_name)).toBe(env.KEYWARD_AUTHZ_LISTEN);
    expect(als.additional_response_headers_to_log).toEqual(['x-usage-tokens', 'x-usage-cost-usd']);
    expect(hcm.http_filters.at(-1)!.name).toBe('envoy.filters.http.router');
    // Every route goes to a defined cluster; the listener is the container's port.
    for (const vh of hcm.route_config.virtual_hosts) for (const r of vh.routes) expect(clusters.has(r.route.cluster)).toBe(true);
    expect(envoy.ports[0]!.containerPort).toBe(listener.address.socket_address.port_value);
    const service = one('Service', dir);
    expect(envoy.ports.map((p) => p.name)).toContain(service.spec.ports[0]!.targetPort);
  });
});

describe('the shared layout', () => {
  const dir = 'deploy/kubernetes/shared';

  it('points both mesh providers at the Service, on the Check port', () => {
    const service = one('Service', dir);
    const host = `${service.metadata.name}.${service.metadata.namespace}.svc.cluster.local`;
    const authzPort = service.spec.ports.find((p) => p.name === 'grpc-authz')!.port;
    const providers = one('IstioOperator', dir).spec.meshConfig.extensionProviders;
    const grpc = providers.find((p) => p.envoyExtAuthzGrpc)!;
    const als = providers.find((p) => p.envoyHttpAls)!;
    expect(grpc.envoyExtAuthzGrpc).toMatchObject({ service: host, port: authzPort, failOpen: false, statusOnError: '503' });
    expect(als.envoyHttpAls).toMatchObject({ service: host, port: authzPort });
    expect(one('AuthorizationPolicy', dir).spec).toMatchObject({ action: 'CUSTOM', provider: { name: grpc.name } });
    expect(one('Telemetry', dir).spec.accessLogging[0]!.providers).toEqual([{ name: als.name }]);
    const deployment = one('Deployment', dir);
    expect(deployment.spec.replicas).toBe(2);
    expect(one('PodDisruptionBudget', dir).spec.selector).toEqual(deployment.spec.selector);
    expect(service.spec.selector).toEqual(deployment.spec.selector.matchLabels);
  });

  it('has a route-rules file that loads and matches by host', () => {
    const table = parseRouteRules(one('ConfigMap', dir, 'keyward-routes').data['routes.yaml']!, 'routes-configmap.yaml');
    expect(table.match('POST', 'api.api:8080', '/v1/agents/7')?.rule).toBe('api-agents-write');
    expect(table.match('GET', 'api.example.com', '/v1/agents')?.rule).toBe('api-agents-read');
    expect(table.match('GET', 'other.example.com', '/v1/agents')?.rule).toBe('default');
  });
});

describe('deploy/istio', () => {
  it('has a route-rules ConfigMap that loads', () => {
    const table = parseRouteRules(one('ConfigMap', 'deploy/istio', 'keyward-routes').data['routes.yaml']!, 'keyward-routes-configmap.yaml');
    expect(table.match('GET', 'api', '/v1/chat/x')?.rule).toBe('chat');
  });
});

describe('Dockerfile', () => {
  // Instructions only: comments dropped, continued lines joined.
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .join('\n')
    .replace(/\\\n/g, ' ');
  const final = text.slice(text.lastIndexOf('\nFROM '));
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };

  it("runs package.json's bin as a numeric non-root user, serve by default, with a health check that needs no curl", () => {
    expect(final).toContain(`ENTRYPOINT ["node", "${pkg.bin.keyward}"]`);
    expect(final).toContain('CMD ["serve"]');
    expect(final).toMatch(/\nUSER 10001:10001\n/);
    expect(final).toMatch(/HEALTHCHECK [^\n]*CMD \["node", "dist\/cli\/main\.js", "health"\]/);
    expect(final).not.toMatch(/curl|wget/);
    for (const v of [
      'KEYWARD_AUTHZ_LISTEN=0.0.0.0:9191',
      'KEYWARD_ADMIN_LISTEN=0.0.0.0:9192',
      'KEYWARD_HTTP_LISTEN=0.0.0.0:9193',
      'KEYWARD_CONSOLE_LISTEN=0.0.0.0:9194',
    ])
      expect(final).toContain(v);
    expect(final).toContain('VOLUME ["/app/data"]');
    expect(final).toMatch(/EXPOSE 9191 9192 9193 9194/);
  });

  it('copies into the final image only dist, proto, package.json and the production node_modules', () => {
    const copies = [...final.matchAll(/^COPY (?:--from=(\w+) )?(\S+) (\S+)$/gm)].map((m) => `${m[1] ?? 'context'}:${m[2]}`);
    expect(copies.sort()).toEqual(['build:/src/dist', 'context:package.json', 'context:proto', 'deps:/src/node_modules'].sort());
    expect(text).toMatch(/npm ci --omit=dev --ignore-scripts/);
  });

  it('.dockerignore lets in exactly what the Dockerfile copies from the context', () => {
    const allowed = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('!'))
      .map((l) => l.slice(1).replace(/\/$/, ''));
    const fromContext = [...text.matchAll(/^COPY (?!--from)(.+) (\S+)$/gm)]
      .flatMap((m) => m[1]!.split(/\s+/))
      .map((p) => p.replace(/^\.\//, ''));
    expect([...new Set(fromContext)].sort()).toEqual([...allowed].sort());
  });
});
