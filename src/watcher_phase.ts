/**
 * The watcher's lifecycle as one value that carries its own data: idle until
 * started, live while a consumer delivers, restarting while the restart loop
 * runs (with the restart and the re-read or rebuild asked for meanwhile), parked when a
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

/**
 * What a restart is asked to do beyond resuming, until a start takes it up:
 * nothing; re-read every revision (the store keeps the newer of two); or
 * rebuild from scratch (what was applied does not compare with the stream's
 * revisions: a replica that disagrees). A rebuild covers a re-read.
 */
export type Ask =
  | { readonly kind: "none" }
  | { readonly kind: "reread"; readonly reason: string }
  | { readonly kind: "rebuild"; readonly reason: string };

/** Nothing asked beyond resuming. */
export const NO_ASK: Ask = { kind: "none" };

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
    /** The re-read or rebuild asked for, until a start takes it up. */
    readonly ask: Ask;
    /** Whether the new consumer delivered all it knew of (never while `again` waits). */
    readonly caughtUp: boolean;
  }
  /**
   * The restart loop ended with the connection down, maybe without a
   * consumer: `reconnected()` restarts, taking `ask` along.
   */
  | { readonly kind: "parked"; readonly ask: Ask; readonly caughtUp: boolean }
  /** Closed for good; `caughtUp` as it was when closed. */
  | { readonly kind: "closed"; readonly caughtUp: boolean };

/** What happened to a watcher, as {@link nextPhase} takes it. */
export type WatcherEvent =
  /** `start()` was called. */
  | { readonly on: "start" }
  /** `start()` failed. */
  | { readonly on: "start_failed" }
  /** A restart loop begins (`done` settles when it ends), asked for `ask`. */
  | { readonly on: "restart"; readonly done: Promise<void>; readonly ask: Ask }
  /** A restart is asked for while one runs, asked for `ask`. */
  | { readonly on: "again"; readonly reason: string; readonly ask: Ask }
  /** The restart loop ended, with the connection up or down. */
  | { readonly on: "restarted"; readonly connection: Connection }
  /** A consumer is being opened: it has delivered nothing yet. */
  | { readonly on: "opening" }
  /** The consumer delivered all it knew of. */
  | { readonly on: "caught_up" }
  /** A start read what was asked: the next one resumes as usual. */
  | { readonly on: "ask_taken" }
  /** `close()` was called. */
  | { readonly on: "close" };

/**
 * The phase after `e` in phase `now` (`now` itself when `e` changes
 * nothing); closed is final.
 *
 * @example
 * ```ts
 * import { nextPhase, NO_ASK } from "./watcher_phase.ts";
 * const done = Promise.resolve();
 * let p = nextPhase({ kind: "live", caughtUp: true }, { on: "restart", done, ask: NO_ASK });
 * p = nextPhase(p, { on: "again", reason: "gap", ask: NO_ASK });
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
        ask: stronger(askIn(now), e.ask),
        caughtUp: false,
      };
    case "again":
      if (now.kind !== "restarting") return now;
      return { ...now, again: e.reason, ask: stronger(now.ask, e.ask) };
    case "restarted":
      if (now.kind !== "restarting") return now;
      return e.connection === "up"
        ? { kind: "live", caughtUp: now.caughtUp }
        : { kind: "parked", ask: now.ask, caughtUp: now.caughtUp };
    case "opening":
      return withCaughtUp(now, false);
    case "caught_up":
      // A restart queued behind this consumer (a re-read asked for meanwhile) catches up instead.
      return now.kind === "restarting" && now.again !== "" ? now : withCaughtUp(now, true);
    case "ask_taken":
      return now.kind === "restarting" && now.ask.kind !== "none" ? { ...now, ask: NO_ASK } : now;
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
 * behind it (the last reason wins; a re-read or rebuild asked for stays asked
 * for, a rebuild over a re-read).
 *
 * @example
 * ```ts ignore
 * const life = new WatcherLifecycle({ restarting: (why) => {}, loop: (why) => restartLoop(why) });
 * life.on({ on: "start" });
 * await life.restart("gap");
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
   * Begins a restart (asked for `ask` too), or, while one runs, queues it
   * behind that one and returns the running one; nothing once closed.
   */
  restart(reason: string, ask: Ask = NO_ASK): Promise<void> {
    const now = this.#now;
    if (now.kind === "closed") return Promise.resolve();
    if (now.kind === "restarting") {
      this.on({ on: "again", reason, ask });
      return now.done;
    }
    this.#o.restarting(reason);
    const done = Promise.withResolvers<void>();
    this.on({ on: "restart", done: done.promise, ask });
    this.#o.loop(reason).finally(() => this.#restarted(done.promise))
      .then(done.resolve, done.reject);
    return done.promise;
  }

  /** The restart loop that `done` settles ended: the restart queued behind it, if any, begins. */
  #restarted(done: Promise<void>): void {
    const now = this.#now;
    if (now.kind !== "restarting" || now.done !== done) return; // closed meanwhile
    this.on({ on: "restarted", connection: this.#connection });
    if (now.again !== "") this.restart(now.again, now.ask);
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
 * The re-read or rebuild asked for and not yet taken up in phase `p`.
 *
 * @example
 * ```ts ignore
 * const plan = planStart(info, { ...position, ask: askIn(life.now) }, { onHistoryGap });
 * ```
 */
export function askIn(p: WatcherPhase): Ask {
  return p.kind === "restarting" || p.kind === "parked" ? p.ask : NO_ASK;
}

/** What is asked once `newer` is asked after `older`: a rebuild over a re-read, else the newer. */
function stronger(older: Ask, newer: Ask): Ask {
  if (newer.kind === "none" || (older.kind === "rebuild" && newer.kind === "reread")) return older;
  return newer;
}

/** `p` with `caughtUp` set to `value` (`p` itself if it has no consumer or already has it). */
function withCaughtUp(p: WatcherPhase, value: boolean): WatcherPhase {
  if (p.kind === "idle" || p.kind === "closed" || p.caughtUp === value) return p;
  return { ...p, caughtUp: value };
}
