/**
 * Admission: a cap on how much of one kind of costly work (a listing read
 * from KV, a history read, a replay) runs at once, in total and per client.
 * Past a cap the request is refused at once instead of queueing work.
 *
 * @module
 */

/** Which cap refused an entry. */
export type Refusal = "total" | "client";

/**
 * Counts work in progress of one kind and refuses it past `max` at once, or
 * past `maxPerClient` for one client.
 *
 * @example
 * ```ts
 * import { Admission } from "./admission.ts";
 * const replays = new Admission(2, 1);
 * const a = replays.enter("10.0.0.1");
 * console.log(typeof a, replays.enter("10.0.0.1")); // "function" "client"
 * if (typeof a === "function") a();
 * console.log(replays.open); // 0
 * ```
 */
export class Admission {
  readonly #max: number;
  readonly #maxPerClient: number;
  readonly #byClient = new Map<string, number>();
  #open = 0;
  readonly #refused: Record<Refusal, number> = { total: 0, client: 0 };

  /** `max` in total; `maxPerClient` for one client (default: `max`). */
  constructor(max: number, maxPerClient: number = max) {
    this.#max = max;
    this.#maxPerClient = maxPerClient;
  }

  /** Work in progress now. */
  get open(): number {
    return this.#open;
  }

  /** Entries refused since creation, by the cap that refused them. */
  get refused(): Readonly<Record<Refusal, number>> {
    return this.#refused;
  }

  /**
   * Takes a place for `client` (undefined: a client that cannot be told
   * apart, bounded by the total only). Returns the function that gives the
   * place back (idempotent), or which cap refused it.
   */
  enter(client?: string): (() => void) | Refusal {
    if (this.#open >= this.#max) {
      this.#refused.total++;
      return "total";
    }
    const mine = client === undefined ? 0 : this.#byClient.get(client) ?? 0;
    if (client !== undefined && mine >= this.#maxPerClient) {
      this.#refused.client++;
      return "client";
    }
    this.#open++;
    if (client !== undefined) this.#byClient.set(client, mine + 1);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.#open--;
      if (client === undefined) return;
      const n = this.#byClient.get(client)! - 1;
      if (n === 0) this.#byClient.delete(client);
      else this.#byClient.set(client, n);
    };
  }
}
