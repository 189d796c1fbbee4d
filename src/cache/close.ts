/**
 * Closing a cache: timers, the region link, a last snapshot, then every wait
 * on NATS (the bind in flight, the watcher, draining an owned connection)
 * under one deadline, `closeTimeoutMs`.
 *
 * @module
 */
import { ClosedError } from "../errors.ts";
import { deadline, settleWithin } from "../async.ts";
import type { CacheCore } from "./core.ts";
import { saveSnapshot } from "./warm_start.ts";

/**
 * How long closing the connection itself may take once the close deadline is
 * spent, ms: nats.js closes a socket at once, this only bounds a broken one.
 */
const CLOSE_GRACE_MS = 100;

/**
 * Closes the cache; `fresh`: whether it is synced now (a last snapshot is saved then).
 *
 * @example
 * ```ts ignore
 * await closeCache(core, fresh);
 * ```
 */
export async function closeCache<T>(c: CacheCore<T>, fresh: boolean): Promise<void> {
  c.sync.stopTimers();
  // Local work, not a wait on NATS: outside the close deadline.
  if (c.o.snapshot && fresh) await saveSnapshot(c);
  // From here every wait on NATS shares one deadline (closeTimeoutMs): a
  // server that keeps the TCP connection up but answers nothing (paused,
  // overloaded) must not hold up the close. What is cut short is best
  // effort anyway: the server drops an inactive consumer by itself.
  const end = Date.now() + c.o.closeTimeoutMs;
  const left = () => Math.max(0, end - Date.now());
  c.life.transition({ on: "closing" }); // `ready` rejects from now on
  c.reached.wakeAll();
  c.aborter.abort(new ClosedError("continue"));
  await c.sync.stop((p) => settleWithin(p, left()));
  c.life.transition({ on: "closed" });
  c.changes.close();
  c.events.close();
  c.freshness.clear();
  if (c.sync.bound && c.sync.link.ownsConnection && !c.sync.link.nc.isClosed()) {
    const nc = c.sync.link.nc;
    // drain() waits for the server: while it is unreachable just close,
    // and a drain the server leaves unanswered is cut at the deadline.
    const drained = c.life.connected ? await settledBy(nc.drain(), left()) : false;
    if (!drained && !nc.isClosed()) {
      await settleWithin(nc.close(), Math.max(left(), CLOSE_GRACE_MS));
    }
  }
}

/** Whether `p` fulfilled within `ms` (a rejection or the deadline: false). */
function settledBy(p: Promise<unknown>, ms: number): Promise<boolean> {
  return deadline(p, ms).then(() => true, () => false);
}
