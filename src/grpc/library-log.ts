/**
 * grpc-js's own log lines, routed into keyward's structured log.
 *
 * grpc-js logs process-wide (its setLogger), by default to stderr. One of its lines
 * quotes a request verbatim: a metadata entry whose value holds characters gRPC
 * metadata does not allow (a tab, a byte above 0x7e) is dropped with "Failed to add
 * metadata entry <name>: <value>. …", and that value can be a bearer credential.
 * keyward's logger replaces that line by the fact alone (`grpc metadata entry
 * dropped`, at debug: any client can cause it), with neither the name nor the value.
 * Every other grpc-js line (bind failures, TLS contexts, GRPC_TRACE output) is logged
 * as `{grpc: <text>}` at the level grpc-js gave it.
 */
import { setLogger } from '@grpc/grpc-js';
import type { Logger } from 'pino';

const DROPPED_METADATA = /^Failed to add metadata entry /;

function text(args: unknown[]): string {
  return args.map((a) => (typeof a === 'string' ? a : a instanceof Error ? a.message : String(a))).join(' ');
}

/** Installs the logger for every grpc-js server and client in the process (the last call wins). */
export function routeGrpcLibraryLog(logger: Logger): void {
  const line =
    (level: 'error' | 'info' | 'debug') =>
    (...args: unknown[]) => {
      const msg = text(args);
      if (DROPPED_METADATA.test(msg)) logger.debug('grpc metadata entry dropped: its value holds characters gRPC metadata does not allow');
      else logger[level]({ grpc: msg }, 'grpc-js');
    };
  setLogger({ error: line('error'), info: line('info'), debug: line('debug') });
}
