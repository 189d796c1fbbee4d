/**
 * The projection the projection checker kills (tests/torture/projection.ts):
 * a ledger of order events where every event writes several keys of the
 * target, and where one key's new value is computed from another key's old
 * value (a customer's total moves by the order's old total when the order is
 * cancelled or moved), so an event applied twice or half-applied shows.
 *
 * Run by `deno task project` as a module: the default export reads its name,
 * source stream and target from `KVEDGE_TORTURE_PROJECTION`
 * (`{"name","stream","target"}` as JSON). In the checker itself,
 * {@linkcode ledgerProjection} builds the reference run and {@linkcode foldLedger}
 * folds the same events in memory.
 *
 * @module
 */
import { defineProjection, type Projection, type ProjectionEvent } from "../../projection.ts";

/** One event of the ledger's source stream. */
export type LedgerEvent =
  | { t: "created"; o: string; c: string }
  | { t: "item"; o: string; amount: number }
  | { t: "cancelled"; o: string }
  | { t: "moved"; o: string; c: string };

/** `order.<o>`. */
export interface Order {
  customer: string;
  total: number;
  items: number;
  /** Source sequence of the last event that changed it. */
  seq: number;
}
/** `customer.<c>`. */
export interface Customer {
  orders: number;
  total: number;
}
/** `stats`: counts of the events that changed something. */
export interface Stats {
  created: number;
  items: number;
  cancelled: number;
  moved: number;
}

/** A value of the target. */
export type LedgerValue = Order | Customer | Stats;

type Get = (key: string) => Promise<LedgerValue | undefined>;
type Write = { key: string; value: LedgerValue } | { key: string; delete: true };

/**
 * The fold of one event on what `get` returns: the writes, in the order they are made.
 *
 * @example
 * ```ts ignore
 * await ledgerWrites({ t: "created", o: "o1", c: "c1" }, 1, () => Promise.resolve(undefined));
 * // order.o1, customer.c1 and stats
 * ```
 */
export async function ledgerWrites(e: LedgerEvent, seq: number, get: Get): Promise<Write[]> {
  const orderKey = `order.${e.o}`;
  const order = await get(orderKey) as Order | undefined;
  const stats = (await get("stats") as Stats | undefined) ??
    { created: 0, items: 0, cancelled: 0, moved: 0 };
  const customer = async (c: string) =>
    (await get(`customer.${c}`) as Customer | undefined) ?? { orders: 0, total: 0 };
  switch (e.t) {
    case "created": {
      if (order) return [];
      const c = await customer(e.c);
      return [
        { key: orderKey, value: { customer: e.c, total: 0, items: 0, seq } },
        { key: `customer.${e.c}`, value: { orders: c.orders + 1, total: c.total } },
        { key: "stats", value: { ...stats, created: stats.created + 1 } },
      ];
    }
    case "item": {
      if (!order) return [];
      const next = { ...order, total: order.total + e.amount, items: order.items + 1, seq };
      const c = await customer(order.customer);
      return [
        { key: orderKey, value: next },
        // From the order's old and new totals: a fold over two keys.
        {
          key: `customer.${order.customer}`,
          value: { ...c, total: c.total - order.total + next.total },
        },
        { key: "stats", value: { ...stats, items: stats.items + 1 } },
      ];
    }
    case "cancelled": {
      if (!order) return [];
      const c = await customer(order.customer);
      return [
        { key: orderKey, delete: true },
        {
          key: `customer.${order.customer}`,
          value: { orders: c.orders - 1, total: c.total - order.total },
        },
        { key: "stats", value: { ...stats, cancelled: stats.cancelled + 1 } },
      ];
    }
    case "moved": {
      if (!order || order.customer === e.c) return [];
      const from = await customer(order.customer);
      const to = await customer(e.c);
      return [
        { key: orderKey, value: { ...order, customer: e.c, seq } },
        {
          key: `customer.${order.customer}`,
          value: { orders: from.orders - 1, total: from.total - order.total },
        },
        { key: `customer.${e.c}`, value: { orders: to.orders + 1, total: to.total + order.total } },
        { key: "stats", value: { ...stats, moved: stats.moved + 1 } },
      ];
    }
  }
}

/** Where the ledger reads and writes. */
export interface LedgerPlace {
  /** Projection name (its durable consumer is `projection_<name>`). */
  name: string;
  /** Source stream; events are on `<stream>.ev`. */
  stream: string;
  /** Target bucket. */
  target: string;
}

/**
 * The ledger projection at `place`.
 *
 * @example
 * ```ts ignore
 * const p = ledgerProjection({ name: "ledger", stream: "LEDGER", target: "ledger" });
 * await using run = await runProjection(nc, p);
 * ```
 */
export function ledgerProjection(place: LedgerPlace): Projection<LedgerValue> {
  return defineProjection<LedgerValue>({
    name: place.name,
    source: { stream: place.stream },
    target: place.target,
    async map(event: ProjectionEvent, ctx) {
      const writes = await ledgerWrites(
        event.json<LedgerEvent>(),
        event.seq,
        async (key) => (await ctx.get(key))?.value,
      );
      return writes.length === 0 ? null : writes;
    },
  });
}

/**
 * The ledger's state after `events` (source sequences 1, 2, …), folded in
 * memory: every present key with its value.
 *
 * @example
 * ```ts ignore
 * const state = await foldLedger([{ t: "created", o: "o1", c: "c1" }]);
 * ```
 */
export async function foldLedger(events: readonly LedgerEvent[]): Promise<Map<string, string>> {
  const state = new Map<string, LedgerValue>();
  for (let i = 0; i < events.length; i++) {
    const writes = await ledgerWrites(events[i]!, i + 1, (k) => Promise.resolve(state.get(k)));
    for (const w of writes) {
      if ("delete" in w) state.delete(w.key);
      else state.set(w.key, w.value);
    }
  }
  return new Map(
    [...state].sort(([a], [b]) => a < b ? -1 : 1).map(([k, v]) => [k, JSON.stringify(v)]),
  );
}

const env = Deno.env.get("KVEDGE_TORTURE_PROJECTION");

/** The projection of the projector process (`KVEDGE_TORTURE_PROJECTION`), or none. */
export default env === undefined ? [] : [ledgerProjection(JSON.parse(env) as LedgerPlace)];
