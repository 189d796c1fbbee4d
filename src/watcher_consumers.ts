/**
 * The watcher's consumers on the server: creating one with a deadline (and
 * failing it as a `PermissionError` when the server refused its delivery
 * subject), and deleting replaced ones in the background, briefly, so that a
 * close waits for them a bounded time.
 *
 * @module
 */
import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import {
  type ConsumerConfig,
  type ConsumerInfo,
  type JetStreamManager,
  jetstreamManager,
} from "@nats-io/jetstream";
import { settleWithin } from "./async.ts";
import { PermissionError } from "./errors.ts";

/** How long deleting a replaced consumer may hold up a close, ms. */
const DROP_DEADLINE_MS = 1_000;

/** Options of {@link WatcherConsumers}. */
export interface WatcherConsumersOptions {
  /** The watcher's connection. */
  nc: NatsConnection;
  /** A manager whose requests time out reasonably (for deletes). */
  jsm: JetStreamManager;
  /** The bucket's stream. */
  stream: string;
}

/**
 * Creates and deletes a watcher's consumers.
 *
 * @example
 * ```ts ignore
 * const consumers = new WatcherConsumers({ nc, jsm, stream: "KV_users" });
 * const info = await consumers.create(sub, config, { deadlineMs: 3_000 });
 * consumers.drop(config.name!);
 * await consumers.settled();
 * ```
 */
export class WatcherConsumers {
  readonly #o: WatcherConsumersOptions;
  readonly #drops = new Set<Promise<unknown>>();
  /** The subscription whose consumer is being created. */
  #creating: Subscription | undefined;
  /** The subscription the server refused (permissions violation), and why. */
  #refused: { sub: Subscription; error: PermissionError } | undefined;

  /** No I/O. */
  constructor(options: WatcherConsumersOptions) {
    this.#o = options;
  }

  /** A manager whose requests time out after `timeoutMs` (no I/O to make one). */
  manager(timeoutMs: number): Promise<JetStreamManager> {
    return jetstreamManager(this.#o.nc, { timeout: timeoutMs, checkAPI: false });
  }

  /**
   * Creates the consumer delivering to `sub`, one request with `options.deadlineMs`.
   * Throws the `PermissionError` of a refused delivery subject: the server
   * refuses a subscription before it answers the create that followed it.
   */
  async create(
    sub: Subscription,
    config: Partial<ConsumerConfig>,
    options: { deadlineMs: number },
  ): Promise<ConsumerInfo> {
    const jsm = await this.manager(options.deadlineMs);
    let info: ConsumerInfo;
    this.#creating = sub;
    try {
      info = await jsm.consumers.add(this.#o.stream, config);
    } finally {
      if (this.#creating === sub) this.#creating = undefined;
    }
    if (this.#refused?.sub === sub) throw this.#refused.error;
    return info;
  }

  /** Whether the consumer of `sub` is being created (its create then fails with the refusal). */
  creating(sub: Subscription): boolean {
    return this.#creating === sub;
  }

  /**
   * The server refused `sub` (`err`, a permissions violation): retrying
   * cannot help until the identity or the prefix changes. Remembers it for
   * the create waiting on `sub` and returns the error.
   */
  refuse(sub: Subscription, err: Error): PermissionError {
    const error = new PermissionError(
      `Cannot receive the watcher's deliveries on "${sub.getSubject()}": ` +
        "the NATS credentials may not subscribe to it; connect with the inbox prefix " +
        "the identity may subscribe to (connectOptions.inboxPrefix; the worker's NATS_INBOX_PREFIX)",
      { cause: err },
    );
    this.#refused = { sub, error };
    return error;
  }

  /** Deletes the consumer `name` in the background (best effort, see {@link settled}). */
  drop(name: string): void {
    if (this.#o.nc.isClosed()) return;
    // Best effort and briefly: the server removes an inactive consumer after
    // its inactive_threshold anyway, so a slow or failed delete is no loss.
    const drop = settleWithin(this.#o.jsm.consumers.delete(this.#o.stream, name), DROP_DEADLINE_MS)
      .finally(() => this.#drops.delete(drop));
    this.#drops.add(drop);
  }

  /** Resolves when every delete in flight has settled or passed its deadline. */
  async settled(): Promise<void> {
    await Promise.all(this.#drops);
  }
}
