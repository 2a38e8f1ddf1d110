/**
 * envoy.service.accesslog.v3.AccessLogService (gRPC ALS) on the authz port: Envoy
 * streams HTTP access-log entries; each entry of a request keyward authorized becomes
 * a detail-only usage event (requests 0) in the usage batcher.
 *
 * Envoy never reads the reply, so the handler never fails a stream once it has
 * started (only metadata beyond the limit refuses it, metadata_too_large): undecodable
 * messages, TCP entries and entries without keyward metadata are counted and
 * skipped; the (empty) response is sent when the client ends its stream; a
 * cancelled stream is simply dropped.
 *
 * Back-pressure: when the usage buffer is congested (the store writes slower than
 * entries arrive, or is down), the stream is paused until the buffer has drained,
 * so HTTP/2 flow control holds Envoy back (Envoy buffers, then drops and counts on
 * its side) instead of keyward dropping entries it has accepted.
 */
import type { sendUnaryData, ServerReadableStream } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { describeError } from '../util/logger';
import {
  AccessLogServiceService,
  type AccessLogServiceServer,
  type StreamAccessLogsMessage,
  type StreamAccessLogsResponse,
} from '../gen/envoy/service/accesslog/v3/als';
import { entryToUsage, type AccessLogUsageOptions } from '../usage/access-log';
import type { UsageEvent } from '../usage/types';
import type { Clock } from '../util/clock';
import { safeDefinition, UndecodableRequest } from './decode';
import { checkMetadataSize } from './metadata-limit';
import { toServiceError } from '../errors/wire';

export interface AccessLogStats {
  /** Streams opened. */
  streams: number;
  /** Messages that could not be decoded (skipped). */
  undecodable: number;
  /** Log entries received, HTTP and TCP. */
  entriesSeen: number;
  /** Entries not metered: TCP entries and HTTP entries without keyward metadata. */
  entriesIgnored: number;
  /** Entries recorded as usage. */
  entriesRecorded: number;
  /** Times a stream was paused because the usage buffer was congested. */
  pauses: number;
}

export function newAccessLogStats(): AccessLogStats {
  return { streams: 0, undecodable: 0, entriesSeen: 0, entriesIgnored: 0, entriesRecorded: 0, pauses: 0 };
}

/** What the handler needs of the usage batcher. */
export interface UsageRecorder {
  record(event: UsageEvent): void;
  /** True when the stream should pause (see UsageBatcher.congested). */
  congested?(): boolean;
  /** Resolves when a paused stream may resume. */
  drained?(): Promise<void>;
}

/**
 * The StreamAccessLogs handler. Pass `stats` to read the counters (they are updated
 * in place); register with SafeAccessLogService so that undecodable messages arrive
 * as UndecodableRequest instead of failing the stream.
 */
export function accessLogImplementation(
  recorder: UsageRecorder,
  opts: AccessLogUsageOptions,
  logger: Logger,
  clock: Clock,
  stats: AccessLogStats = newAccessLogStats(),
): AccessLogServiceServer {
  return {
    streamAccessLogs(
      call: ServerReadableStream<StreamAccessLogsMessage | UndecodableRequest, StreamAccessLogsResponse>,
      callback: sendUnaryData<StreamAccessLogsResponse>,
    ): void {
      stats.streams++;
      try {
        checkMetadataSize(call.metadata);
      } catch (e) {
        callback(toServiceError(e));
        return;
      }
      let answered = false;
      let paused = false;
      let logName: string | undefined;
      const holdBack = () => {
        if (paused || !recorder.congested?.() || !recorder.drained) return;
        paused = true;
        stats.pauses++;
        call.pause();
        void recorder.drained().then(() => {
          paused = false;
          if (!answered) call.resume();
        });
      };
      const answer = () => {
        if (answered) return;
        answered = true;
        try {
          callback(null, {});
        } catch (e) {
          logger.debug({ err: describeError(e) }, 'access-log stream: could not answer');
        }
      };

      call.on('data', (msg: StreamAccessLogsMessage | UndecodableRequest) => {
        try {
          if (msg instanceof UndecodableRequest) {
            stats.undecodable++;
            return;
          }
          if (msg.identifier && logName === undefined) {
            logName = msg.identifier.logName;
            logger.debug({ logName, node: msg.identifier.node?.id }, 'access-log stream opened');
          }
          if (msg.tcpLogs) {
            const n = msg.tcpLogs.logEntry.length;
            stats.entriesSeen += n;
            stats.entriesIgnored += n;
          }
          const entries = msg.httpLogs?.logEntry;
          if (!entries || entries.length === 0) return;
          const nowMs = clock.now().getTime();
          for (const entry of entries) {
            stats.entriesSeen++;
            let event: UsageEvent | undefined;
            try {
              event = entryToUsage(entry, opts, nowMs);
            } catch {
              event = undefined;
            }
            if (!event) {
              stats.entriesIgnored++;
              continue;
            }
            recorder.record(event);
            stats.entriesRecorded++;
          }
        } catch (e) {
          logger.warn({ err: describeError(e) }, 'access-log message skipped');
        }
        holdBack();
      });
      call.on('end', answer);
      // A cancelled or broken stream: nothing to answer; what arrived is kept.
      call.on('error', (e: unknown) => {
        answered = true;
        logger.debug({ err: describeError(e), logName }, 'access-log stream ended with an error');
      });
      call.on('cancelled', () => {
        answered = true;
      });
    },
  };
}

/** The AccessLogService definition, with undecodable messages passed on as UndecodableRequest. */
export const SafeAccessLogService = safeDefinition(AccessLogServiceService);
