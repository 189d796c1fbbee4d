/**
 * The worked example: an `ORDERS` event stream (subjects `orders.<id>.<type>`)
 * projected into the `order-summary` bucket, one key per order
 * (`order.<id>`), which an edge worker then serves:
 *
 * ```sh
 * deno task project examples/orders/projection.ts
 * KVEDGE_BUCKETS=order-summary:lazy deno task serve
 * ```
 *
 * `created` starts a summary, `item_added` folds into it, `shipped` marks it,
 * `cancelled` deletes it. Events for an order with no summary (never created,
 * or cancelled) and events that fail the schema are ignored.
 *
 * @module
 */
import { z } from "zod";
import { defineProjection, type ProjectionEvent } from "../../projection.ts";

const orderId = z.string().regex(/^[-\w]{1,64}$/);

/** The events of an order, as published on `orders.<orderId>.<type>`. */
export const OrderEvent = z.discriminatedUnion("type", [
  z.object({ type: z.literal("created"), orderId, customer: z.string().max(200) }),
  z.object({
    type: z.literal("item_added"),
    orderId,
    sku: z.string().max(64),
    qty: z.number().int().positive(),
    price: z.number().nonnegative(),
  }),
  z.object({ type: z.literal("shipped"), orderId }),
  z.object({ type: z.literal("cancelled"), orderId, reason: z.string().max(200).optional() }),
]);

/** One order event. */
export type OrderEvent = z.infer<typeof OrderEvent>;

/** The value stored at `order.<id>` in `order-summary`. */
export interface OrderSummary {
  /** `open` until shipped. */
  status: "open" | "shipped";
  /** Who ordered. */
  customer: string;
  /** Number of items (sum of quantities). */
  items: number;
  /** Sum of quantity × price, rounded to cents. */
  total: number;
  /** Time of the last event applied (the source's timestamp, so a replay gives the same value). */
  updatedAt: string;
}

/** Parses an order event; `undefined` for anything that is not one. */
export function parseOrderEvent(event: ProjectionEvent): OrderEvent | undefined {
  let raw: unknown;
  try {
    raw = event.json();
  } catch {
    return undefined;
  }
  const parsed = OrderEvent.safeParse(raw);
  return parsed.success ? parsed.data : undefined;
}

/** Adds in cents, so the total never drifts by a float rounding. */
function addMoney(total: number, qty: number, price: number): number {
  return (Math.round(total * 100) + qty * Math.round(price * 100)) / 100;
}

/**
 * The projection. Run it with `deno task project examples/orders/projection.ts`.
 *
 * @example
 * ```ts ignore
 * import orderSummary from "./projection.ts";
 * console.log(orderSummary.target.bucket); // "order-summary"
 * ```
 */
export default defineProjection<OrderSummary>({
  name: "order-summary",
  source: { stream: "ORDERS", subject: "orders.>" },
  target: "order-summary",
  async map(event, ctx) {
    const e = parseOrderEvent(event);
    if (!e) return null;
    const key = `order.${e.orderId}`;
    const updatedAt = new Date(event.timestampMs).toISOString();
    if (e.type === "cancelled") return { key, delete: true };
    if (e.type === "created") {
      return {
        key,
        value: { status: "open", customer: e.customer, items: 0, total: 0, updatedAt },
      };
    }
    const current = (await ctx.get(key))?.value;
    if (!current) return null;
    if (e.type === "shipped") return { key, value: { ...current, status: "shipped", updatedAt } };
    return {
      key,
      value: {
        ...current,
        items: current.items + e.qty,
        total: addMoney(current.total, e.qty, e.price),
        updatedAt,
      },
    };
  },
});
