/**
 * The options of keyward's gRPC servers (authz and admin ports); the benchmark's
 * baseline servers use them too, so that comparisons are like for like. Metadata is limited by each keyward RPC itself
 * (src/grpc/metadata-limit.ts): grpc-js has no such option. Channelz is off: keyward
 * serves no channelz service, and grpc-js's per-call channelz tracking costs about
 * 1.7 KB of garbage and a handful of closures per Check (docs/benchmarks.md).
 */
export const GRPC_SERVER_OPTIONS = {
  'grpc.max_receive_message_length': 4 * 1024 * 1024,
  'grpc.max_send_message_length': 16 * 1024 * 1024,
  'grpc.enable_channelz': 0,
} as const;
