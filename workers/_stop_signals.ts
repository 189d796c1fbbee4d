/**
 * The workers' stop signals, in one place: SIGINT, SIGTERM and SIGHUP. The
 * first asks for a graceful stop; a second means "now" — except a repeat of
 * a first SIGTERM or SIGHUP, which is the same stop delivered twice.
 *
 * The listeners are installed once and never removed: in Deno, removing the
 * last listener of a signal restores its default action, so a signal that
 * lands between a removal and the next install (under `deno task serve` the
 * worker gets the group's SIGTERM and `deno task`'s forwarded copy in the
 * same instant) killed the worker with status 143 before it drained.
 *
 * @module
 */

/** The signals that stop a worker. SIGHUP: a closed terminal must not leave the embedded nats-server behind. */
export const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/**
 * Stop signals whose repeats are the same stop delivered again, not an
 * operator asking for "now": a service manager (systemd's default
 * `KillMode=control-group`, `kill -- -<pgid>`) signals every process of the
 * group, so under `deno task serve` the worker gets SIGTERM once from the
 * manager and once more forwarded by `deno task`; a closed terminal sends
 * SIGHUP to the whole session alike. SIGINT is interactive (Ctrl-C reaches
 * the worker once): pressing it again forces the exit.
 */
export const REPEATABLE_SIGNALS: readonly string[] = ["SIGTERM", "SIGHUP"];

/** What a worker does with the signals after the first. */
export interface StopSignalOptions {
  /** A repeat of the first SIGTERM or SIGHUP: logged, the stop goes on. */
  onRepeat(signal: string): void;
  /** Any other signal after the first: log it; the process then exits with `forcedExitCode`. */
  onForce(signal: string): void;
  /** The exit code of a forced exit. */
  forcedExitCode: number;
}

/**
 * Listens for the stop signals for the rest of the process's life.
 *
 * @returns a promise of the first signal's name.
 * @example
 * ```ts ignore
 * const first = listenForStop({
 *   onRepeat: (s) => console.log("repeated", s),
 *   onForce: (s) => console.log("forced", s),
 *   forcedExitCode: 1,
 * });
 * console.log("stopping on", await first);
 * ```
 */
export function listenForStop(options: StopSignalOptions): Promise<string> {
  const stop = Promise.withResolvers<string>();
  let first: string | undefined;
  for (const signal of STOP_SIGNALS) {
    Deno.addSignalListener(signal, () => {
      if (first === undefined) {
        first = signal;
        stop.resolve(signal);
      } else if (signal === first && REPEATABLE_SIGNALS.includes(signal)) {
        options.onRepeat(signal);
      } else {
        options.onForce(signal);
        Deno.exit(options.forcedExitCode);
      }
    });
  }
  return stop.promise;
}
