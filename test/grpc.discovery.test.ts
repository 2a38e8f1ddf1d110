/** Both ports serve gRPC health and server reflection, so generic tools work. */
import { credentials, loadPackageDefinition, type GrpcObject, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { startHarness, type Harness } from './support/harness';

const reflectionProto = require.resolve('@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto');
const healthProto = require.resolve('grpc-health-check/proto/health/v1/health.proto');

function ctor(file: string, path: string[]): ServiceClientConstructor {
  let o: GrpcObject | ServiceClientConstructor = loadPackageDefinition(loadSync(file, { keepCase: true, enums: String }));
  for (const p of path) o = (o as GrpcObject)[p] as GrpcObject;
  return o as unknown as ServiceClientConstructor;
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
        (c as unknown as { Check: Function }).Check({ service }, (e: Error | null, r: { status: string }) => (e ? reject(e) : resolve(r))),
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
      new Promise<Record<string, any>>((resolve, reject) => {
        const stream = (c as unknown as { ServerReflectionInfo: () => any }).ServerReflectionInfo();
        stream.on('data', (d: Record<string, any>) => {
          resolve(d);
          stream.end();
        });
        stream.on('error', reject);
        stream.write(req);
      });
    const list = await ask({ list_services: '' });
    const names = list.list_services_response.service.map((s: { name: string }) => s.name);
    expect(names).toContain('keyward.admin.v1.KeyAdmin');
    const file = await ask({ file_containing_symbol: 'keyward.admin.v1.KeyAdmin' });
    expect(file.file_descriptor_response.file_descriptor_proto.length).toBeGreaterThan(0);
    c.close();
  });

  it('serves health and reflection for envoy.service.auth.v3.Authorization on the authz port', async () => {
    const Health = ctor(healthProto, ['grpc', 'health', 'v1', 'Health']);
    const hc = new Health(`127.0.0.1:${h.app.authzPort}`, credentials.createInsecure());
    const status = await new Promise<string>((resolve, reject) =>
      (hc as unknown as { Check: Function }).Check(
        { service: 'envoy.service.auth.v3.Authorization' },
        (e: Error | null, r: { status: string }) => (e ? reject(e) : resolve(r.status)),
      ),
    );
    expect(status).toBe('SERVING');
    hc.close();
    const Reflection = ctor(reflectionProto, ['grpc', 'reflection', 'v1', 'ServerReflection']);
    const c = new Reflection(`127.0.0.1:${h.app.authzPort}`, credentials.createInsecure());
    const names = await new Promise<string[]>((resolve, reject) => {
      const stream = (c as unknown as { ServerReflectionInfo: () => any }).ServerReflectionInfo();
      stream.on('data', (d: Record<string, any>) => {
        resolve(d.list_services_response.service.map((s: { name: string }) => s.name));
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
