/**
 * gRPC health (grpc.health.v1) and server reflection, added to each keyward server
 * so generic tools (grpcurl, grpc_health_probe, Envoy health checks) can use them.
 */
import { join } from 'node:path';
import type { Server } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';

/** proto/ beside src/ or dist/. */
export const PROTO_ROOT = join(__dirname, '..', '..', 'proto');

export function addReflection(server: Server, protoFiles: string[]): void {
  const pkg = loadSync(protoFiles, {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  new ReflectionService(pkg).addToServer(server);
}

/** A health service whose overall status ('') and named services start NOT_SERVING. */
export function addHealth(server: Server, services: string[]): HealthImplementation {
  const map: Record<string, 'NOT_SERVING'> = { '': 'NOT_SERVING' };
  for (const s of services) map[s] = 'NOT_SERVING';
  const health = new HealthImplementation(map);
  health.addToServer(server);
  return health;
}
