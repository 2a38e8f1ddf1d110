/**
 * A command deadline that an event-loop stall cannot fake.
 *
 * A plain timer fires as soon as the loop gets to it: after a 300 ms stall (a major GC,
 * a burst of work), a 100 ms timer fires even though Redis answered in 1 ms and the
 * reply is sitting unread in the socket. withDeadline() does not give up in the timer
 * callback: it waits one more turn (setImmediate), and Node runs I/O callbacks (the
 * poll phase) before immediates, so a reply that has arrived is read and settles the
 * call first. Only a command still unanswered after that is timed out.
 *
 * The command itself is not cancelled; its late reply is ignored.
 */
export class CommandTimeoutError extends Error {
  constructor(ms: number) {
    super(`Redis did not answer within ${ms} ms`);
    this.name = 'CommandTimeoutError';
  }
}

export function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(
      () =>
        setImmediate(() => {
          if (settled) return;
          settled = true;
          reject(new CommandTimeoutError(ms));
        }),
      ms,
    );
    p.then(
      (v) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        // The command's own rejection, passed on as it is.
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
        reject(e);
      },
    );
  });
}
