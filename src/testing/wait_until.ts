// Test support: wait until a condition holds, re-checked whenever the owner says something
// happened. The owner keeps a set of wake-up functions and calls each one after every event it
// receives (a request, a datagram); waitUntil adds one and removes it when done.

/** Resolves once `check()` is true, re-checked on each wake-up; rejects after timeoutMs. */
export async function waitUntil(
  waiters: Set<() => void>,
  check: () => boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  if (check()) return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      waiters.delete(wake);
      reject(new Error(`${what} not seen within ${timeoutMs} ms`));
    }, timeoutMs);
    const wake = (): void => {
      if (!check()) return;
      clearTimeout(timer);
      waiters.delete(wake);
      resolve();
    };
    waiters.add(wake);
  });
}
