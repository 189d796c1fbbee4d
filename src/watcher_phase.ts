/**
 * The watcher's lifecycle as one value that carries its own data: idle until
 * started, live while a consumer delivers, restarting while the restart loop
 * runs (with the restart and the re-read asked for meanwhile), parked when a
 * restart ended with the connection down, closed for good. {@link nextPhase}
 * is its one transition function, so a caught-up consumer with a restart
 * queued behind it, a queued restart with no restart running, or a phase
 * after closed cannot be written.
 *
 * The connection is not a phase: it drops and comes back in every phase
 * (idle, live, restarting, parked) and changes what each does (no liveness
 * check, no consumer delete, a restart that ends at once), so it is a
 * separate {@link Connection} beside it.
 *
 * @module
 */

/** Whether the watcher's connection is up, as `disconnected()`/`reconnected()` last said. */
export type Connection = "up" | "down";

/** Where a watcher's lifecycle stands, with the data of that phase. */
export type WatcherPhase =
  /** Built, not started (or its start failed): `place()` may still set its position. */
  | { readonly kind: "idle" }
  /** Started: a consumer delivers (or is being created); `caughtUp` once it delivered all it knew of. */
  | { readonly kind: "live"; readonly caughtUp: boolean }
  /** The restart loop runs. */
  | {
    readonly kind: "restarting";
    /** Settles once the loop has ended (what every `restart()` meanwhile returns). */
    readonly done: Promise<void>;
    /** Why a restart was asked for while this one runs: it runs next ("": none). */
    readonly again: string;
    /** Why a full re-read was asked for, until a start takes it up ("": none). */
    readonly resync: string;
    /** Whether the new consumer delivered all it knew of (never while `again` waits). */
    readonly caughtUp: boolean;
  }
  /**
   * The restart loop ended with the connection down, maybe without a
   * consumer: `reconnected()` restarts, taking `resync` along.
   */
  | { readonly kind: "parked"; readonly resync: string; readonly caughtUp: boolean }
  /** Closed for good; `caughtUp` as it was when closed. */
  | { readonly kind: "closed"; readonly caughtUp: boolean };

/** What happened to a watcher, as {@link nextPhase} takes it. */
export type WatcherEvent =
  /** `start()` was called. */
  | { readonly on: "start" }
  /** `start()` failed. */
  | { readonly on: "start_failed" }
  /** A restart loop begins (`done` settles when it ends); `resync` if a re-read is asked for. */
  | { readonly on: "restart"; readonly done: Promise<void>; readonly resync: string }
  /** A restart is asked for while one runs (`resync` if a re-read is asked for). */
  | { readonly on: "again"; readonly reason: string; readonly resync: string }
  /** The restart loop ended, with the connection up or down. */
  | { readonly on: "restarted"; readonly connection: Connection }
  /** A consumer is being opened: it has delivered nothing yet. */
  | { readonly on: "opening" }
  /** The consumer delivered all it knew of. */
  | { readonly on: "caught_up" }
  /** A start read the re-read request: the next one resumes as usual. */
  | { readonly on: "resync_taken" }
  /** `close()` was called. */
  | { readonly on: "close" };

/**
 * The phase after `e` in phase `now` (`now` itself when `e` changes
 * nothing); closed is final.
 *
 * @example
 * ```ts
 * import { nextPhase } from "./watcher_phase.ts";
 * const done = Promise.resolve();
 * let p = nextPhase({ kind: "live", caughtUp: true }, { on: "restart", done, resync: "" });
 * p = nextPhase(p, { on: "again", reason: "gap", resync: "" });
 * p = nextPhase(p, { on: "caught_up" }); // refused: a restart waits behind this consumer
 * ```
 */
export function nextPhase(now: WatcherPhase, e: WatcherEvent): WatcherPhase {
  if (now.kind === "closed") return now;
  switch (e.on) {
    case "start":
      return now.kind === "idle" ? { kind: "live", caughtUp: false } : now;
    case "start_failed":
      return now.kind === "live" ? { kind: "idle" } : now;
    case "restart":
      if (now.kind === "restarting") return now;
      return {
        kind: "restarting",
        done: e.done,
        again: "",
        resync: e.resync || resyncIn(now),
        caughtUp: false,
      };
    case "again":
      if (now.kind !== "restarting") return now;
      return { ...now, again: e.reason, resync: e.resync || now.resync };
    case "restarted":
      if (now.kind !== "restarting") return now;
      return e.connection === "up"
        ? { kind: "live", caughtUp: now.caughtUp }
        : { kind: "parked", resync: now.resync, caughtUp: now.caughtUp };
    case "opening":
      return withCaughtUp(now, false);
    case "caught_up":
      // A restart queued behind this consumer (a re-read asked for meanwhile) catches up instead.
      return now.kind === "restarting" && now.again !== "" ? now : withCaughtUp(now, true);
    case "resync_taken":
      return now.kind === "restarting" && now.resync !== "" ? { ...now, resync: "" } : now;
    case "close":
      return { kind: "closed", caughtUp: caughtUpIn(now) };
  }
}

/** What {@link WatcherLifecycle} runs for its watcher. */
export interface WatcherLifecycleOptions {
  /** A restart begins for `reason` (the handler is told, before the phase says so). */
  restarting(reason: string): void;
  /** The restart loop for `reason`: resolves once a consumer runs, or closed, or disconnected. */
  loop(reason: string): Promise<void>;
}

/**
 * Owns a watcher's phase and connection: moves the phase by {@link nextPhase}
 * and runs one restart loop at a time, a restart asked for meanwhile queued
 * behind it (the last reason wins; a re-read asked for stays asked for).
 *
 * @example
 * ```ts ignore
 * const life = new WatcherLifecycle({ restarting: (why) => {}, loop: (why) => restartLoop(why) });
 * life.on({ on: "start" });
 * await life.restart("gap", "");
 * ```
 */
export class WatcherLifecycle {
  readonly #o: WatcherLifecycleOptions;
  #now: WatcherPhase = { kind: "idle" };
  #connection: Connection = "up";

  /** An idle watcher's lifecycle, connected; runs nothing yet. */
  constructor(options: WatcherLifecycleOptions) {
    this.#o = options;
  }

  /** The phase as it is now. */
  get now(): WatcherPhase {
    return this.#now;
  }

  /** The connection, as the watcher was last told. */
  get connection(): Connection {
    return this.#connection;
  }

  /** The connection went down (`"down"`) or came back (`"up"`). */
  connected(connection: Connection): void {
    this.#connection = connection;
  }

  /** Moves the phase on by `e`; true if that changed it. */
  on(e: WatcherEvent): boolean {
    const before = this.#now;
    this.#now = nextPhase(before, e);
    return this.#now !== before;
  }

  /**
   * Begins a restart (`resync`: a re-read asked for with it), or, while one
   * runs, queues it behind that one and returns the running one; nothing
   * once closed.
   */
  restart(reason: string, resync: string): Promise<void> {
    const now = this.#now;
    if (now.kind === "closed") return Promise.resolve();
    if (now.kind === "restarting") {
      this.on({ on: "again", reason, resync });
      return now.done;
    }
    this.#o.restarting(reason);
    const done = Promise.withResolvers<void>();
    this.on({ on: "restart", done: done.promise, resync });
    this.#o.loop(reason).finally(() => this.#restarted(done.promise))
      .then(done.resolve, done.reject);
    return done.promise;
  }

  /** The restart loop that `done` settles ended: the restart queued behind it, if any, begins. */
  #restarted(done: Promise<void>): void {
    const now = this.#now;
    if (now.kind !== "restarting" || now.done !== done) return; // closed meanwhile
    this.on({ on: "restarted", connection: this.#connection });
    if (now.again !== "") this.restart(now.again, now.resync);
  }
}

/**
 * Whether the consumer of phase `p` delivered all it knew of.
 *
 * @example
 * ```ts ignore
 * if (caughtUpIn(life.now)) sweep();
 * ```
 */
export function caughtUpIn(p: WatcherPhase): boolean {
  return p.kind !== "idle" && p.caughtUp;
}

/**
 * The re-read asked for and not yet taken up in phase `p` ("": none).
 *
 * @example
 * ```ts ignore
 * const plan = planStart(info, { ...position, resyncNext: resyncIn(life.now) }, { onHistoryGap });
 * ```
 */
export function resyncIn(p: WatcherPhase): string {
  return p.kind === "restarting" || p.kind === "parked" ? p.resync : "";
}

/** `p` with `caughtUp` set to `value` (`p` itself if it has no consumer or already has it). */
function withCaughtUp(p: WatcherPhase, value: boolean): WatcherPhase {
  if (p.kind === "idle" || p.kind === "closed" || p.caughtUp === value) return p;
  return { ...p, caughtUp: value };
}
