/**
 * KeyAdmin RPCs that are safe to retry (AIP-155 request_id), at the gRPC edge: the
 * request's request_id and argument hash, the response as remembered (protobuf bytes,
 * its secret apart) and as replayed. What is remembered, when and for how long:
 * src/admin/requests.ts.
 *
 * Making an RPC retry-safe (its request has `string request_id`):
 *   rpc: retrySafe(admin.requests, { rpc: 'Name', response: NameResponse, secret?: 'secret' },
 *                  (caller, req) => module.method(caller, ...), (result) => message(result))
 * where `module.method` does its change in one AdminContext.tx() whose result is
 * `result` (the same value the method returns).
 */
import type { AdminRequests, RememberedResponse, RetrySafeCall } from '../../admin/requests';
import { argumentsHash, ReplaySignal, requestId } from '../../admin/requests';
import type { CallContext } from '../../admin/principal';
import type { MessageFns } from '../../gen/keyward/admin/v1/key_admin';

/** The names of a message's string fields. */
type StringField<T> = { [K in keyof T]: T[K] extends string ? K : never }[keyof T] & string;

export interface RetrySafeSpec<Res> {
  /** The RPC's name as remembered (e.g. `CreateKey`); a request_id reused for another RPC is refused. */
  rpc: string;
  response: MessageFns<Res>;
  /** The response's secret field: stored sealed, apart from the response, and put back on a replay. */
  secret?: StringField<Res>;
}

/**
 * A handler that runs `run` once per (caller, request_id) within the window and answers
 * every retry with the first response. Without a request_id it just runs.
 */
export function retrySafe<Req extends { requestId: string }, Res, Result>(
  requests: AdminRequests,
  spec: RetrySafeSpec<Res>,
  run: (caller: CallContext, req: Req) => Promise<Result>,
  toMessage: (result: Result) => Res,
): (caller: CallContext, req: Req) => Promise<Res> {
  const replayed = (remembered: RememberedResponse): Res => {
    const message = spec.response.decode(remembered.response);
    if (spec.secret && remembered.secret !== undefined) (message as Record<string, unknown>)[spec.secret] = remembered.secret;
    return message;
  };
  return async (caller, req) => {
    const id = requestId(req.requestId);
    if (id === undefined) return toMessage(await run(caller, req));
    const call: RetrySafeCall = {
      rpc: spec.rpc,
      requestId: id,
      argsHash: argumentsHash({ ...req, requestId: undefined }),
      remember(result) {
        const message = toMessage(result as Result);
        if (!spec.secret) return { response: spec.response.encode(message).finish() };
        const secret = message[spec.secret] as string;
        return { response: spec.response.encode({ ...message, [spec.secret]: '' }).finish(), secret };
      },
    };
    // A retry is answered before validation: what was valid then is answered as it was.
    const prior = await requests.lookup(caller, call);
    if (prior) return replayed(prior);
    try {
      return toMessage(await run({ ...caller, retry: call }, req));
    } catch (e) {
      if (e instanceof ReplaySignal) return replayed(e.replay);
      throw e;
    }
  };
}
