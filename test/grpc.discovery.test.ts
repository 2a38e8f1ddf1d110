/** Both ports serve gRPC health and server reflection, so generic tools work. */
import { credentials, loadPackageDefinition, type ClientDuplexStream, type GrpcObject, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { startHarness, type Harness } from './support/harness';

const reflectionProto = require.resolve('@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto');
const healthProto = require.resolve('grpc-health-check/proto/health/v1/health.proto');

/** The dynamically loaded clients, as far as the test uses them. */
interface HealthClient {
  Check(request: { service: string }, callback: (e: Error | null, r: { status: string }) => void): void;
}
interface ReflectionResponse {
  list_services_response?: { service: { name: string }[] };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
}
interface ReflectionClient {
  ServerReflectionInfo(): ClientDuplexStream<object, ReflectionResponse>;
}

function ctor(file: string, path: string[]): ServiceClientConstructor {
  let node: GrpcObject[string] | undefined = loadPackageDefinition(loadSync(file, { keepCase: true, enums: String }));
  for (const name of path) node = (node as GrpcObject)[name];
  return node as ServiceClientConstructor;
}

describe('gRPC discovery on both ports', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness('sqlite');
  });
  afterAll(async () => h.stop());

  it('answers grpc.health.v1 Check with SERVING, overall and for KeyAdmin', async () => {
    const Health = ctor(healthProto, ['grpc', 'health', 'v1', 'Health']);
    const c = new Health(`127.0.0.1:${h.app.adminPort}`, credentials.createInsecure());
    const check = (service: string) =>
      new Promise<{ status: string }>((resolve, reject) =>
        (c as unknown as HealthClient).Check({ service }, (e, r) => (e ? reject(e) : resolve(r))),
      );
    expect((await check('')).status).toBe('SERVING');
    expect((await check('keyward.admin.v1.KeyAdmin')).status).toBe('SERVING');
    await expect(check('no.such.Service')).rejects.toMatchObject({ code: 5 });
    c.close();
  });

  it('lists KeyAdmin through server reflection and serves its descriptor', async () => {
    const Reflection = ctor(reflectionProto, ['grpc', 'reflection', 'v1', 'ServerReflection']);
    const c = new Reflection(`127.0.0.1:${h.app.adminPort}`, credentials.createInsecure());
    const ask = (req: object) =>
      new Promise<ReflectionResponse>((resolve, reject) => {
        const stream = (c as unknown as ReflectionClient).ServerReflectionInfo();
        stream.on('data', (d: ReflectionResponse) => {
          resolve(d);
          stream.end();
        });
        stream.on('error', reject);
        stream.write(req);
      });
    const list = await ask({ list_services: '' });
    const names = list.list_services_response!.service.map((s) => s.name);
    expect(names).toContain('keyward.admin.v1.KeyAdmin');
    const file = await ask({ file_containing_symbol: 'keyward.admin.v1.KeyAdmin' });
    expect(file.file_descriptor_response!.file_descriptor_proto.length).toBeGreaterThan(0);
    c.close();
  });

  it('serves health and reflection for envoy.service.auth.v3.Authorization on the authz port', async () => {
    const Health = ctor(healthProto, ['grpc', 'health', 'v1', 'Health']);
    const hc = new Health(`127.0.0.1:${h.app.authzPort}`, credentials.createInsecure());
    const status = await new Promise<string>((resolve, reject) =>
      (hc as unknown as HealthClient).Check({ service: 'envoy.service.auth.v3.Authorization' }, (e, r) =>
        e ? reject(e) : resolve(r.status),
      ),
    );
    expect(status).toBe('SERVING');
    hc.close();
    const Reflection = ctor(reflectionProto, ['grpc', 'reflection', 'v1', 'ServerReflection']);
    const c = new Reflection(`127.0.0.1:${h.app.authzPort}`, credentials.createInsecure());
    const names = await new Promise<string[]>((resolve, reject) => {
      const stream = (c as unknown as ReflectionClient).ServerReflectionInfo();
      stream.on('data', (d: ReflectionResponse) => {
        resolve(d.list_services_response!.service.map((s) => s.name));
        stream.end();
      });
      stream.on('error', reject);
      stream.write({ list_services: '' });
    });
    expect(names).toContain('envoy.service.auth.v3.Authorization');
    expect(names).not.toContain('keyward.admin.v1.KeyAdmin');
    c.close();
  });
});
