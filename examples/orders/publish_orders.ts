/**
 * Publishes a batch of order events into the `ORDERS` stream (created if
 * missing, subjects `orders.>`), for the worked example:
 *
 * ```sh
 * deno run -A examples/orders/publish_orders.ts [--orders 100] [--first-id 1] [--seed 1]
 * ```
 *
 * Connects to `NATS_URL`, else the embedded server of a running
 * `deno task serve`, else `nats://127.0.0.1:4222`. Every order is `created`,
 * gets 1–5 `item_added`, and then is `shipped` (70 %), `cancelled` (15 %) or
 * left open. Events of different orders are interleaved, as in real traffic.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { connect } from "@nats-io/transport-node";
import { jetstream, type JetStreamClient, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { findEmbedded } from "../../host/embedded.ts";
import type { OrderEvent } from "./projection.ts";

/** Options of {@linkcode publishOrders}. */
export interface PublishOrdersOptions {
  /** How many orders. Default 100. */
  orders?: number;
  /** Id of the first order (ids are consecutive). Default 1. */
  firstId?: number;
  /** Seed of the pseudo-random choices, so a run can be repeated. Default 1. */
  seed?: number;
  /** Stream subject prefix. Default `"orders"`. */
  prefix?: string;
}

/** What {@linkcode publishOrders} published. */
export interface PublishedOrders {
  /** Events published. */
  events: number;
  /** Orders by final fate. */
  shipped: number;
  /** Orders cancelled. */
  cancelled: number;
  /** Orders left open. */
  open: number;
  /** Stream sequence of the last event. */
  lastSeq: number;
}

/** A small deterministic PRNG (mulberry32). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Builds the events of `orders` orders, interleaved across orders but in
 * order within each one.
 *
 * @example
 * ```ts
 * import { orderEvents } from "./publish_orders.ts";
 * console.log(orderEvents({ orders: 2 }).length > 4); // true
 * ```
 */
export function orderEvents(options: PublishOrdersOptions = {}): OrderEvent[] {
  const orders = options.orders ?? 100;
  const firstId = options.firstId ?? 1;
  const rnd = random(options.seed ?? 1);
  const queues: OrderEvent[][] = [];
  for (let i = 0; i < orders; i++) {
    const orderId = String(firstId + i);
    const q: OrderEvent[] = [{ type: "created", orderId, customer: `customer-${1 + (i % 17)}` }];
    const n = 1 + Math.floor(rnd() * 5);
    for (let k = 0; k < n; k++) {
      q.push({
        type: "item_added",
        orderId,
        sku: `sku-${Math.floor(rnd() * 50)}`,
        qty: 1 + Math.floor(rnd() * 3),
        price: Math.round(100 + rnd() * 9900) / 100,
      });
    }
    const fate = rnd();
    if (fate < 0.7) q.push({ type: "shipped", orderId });
    else if (fate < 0.85) q.push({ type: "cancelled", orderId, reason: "customer request" });
    queues.push(q);
  }
  const out: OrderEvent[] = [];
  let live = queues.filter((q) => q.length > 0);
  while (live.length > 0) {
    const q = live[Math.floor(rnd() * live.length)]!;
    out.push(q.shift()!);
    live = live.filter((x) => x.length > 0);
  }
  return out;
}

/**
 * Creates the `ORDERS` stream if missing and publishes the events of
 * {@linkcode orderEvents}, pipelined (one connection keeps them in order).
 *
 * @example
 * ```ts ignore
 * import { jetstream } from "@nats-io/jetstream";
 * const result = await publishOrders(nc, jetstream(nc), { orders: 10 });
 * console.log(result.events);
 * ```
 */
export async function publishOrders(
  nc: NatsConnection,
  js: JetStreamClient,
  options: PublishOrdersOptions & { stream?: string } = {},
): Promise<PublishedOrders> {
  const stream = options.stream ?? "ORDERS";
  const prefix = options.prefix ?? "orders";
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.streams.info(stream);
  } catch {
    await jsm.streams.add({ name: stream, subjects: [`${prefix}.>`] });
  }
  const events = orderEvents(options);
  const result: PublishedOrders = { events: 0, shipped: 0, cancelled: 0, open: 0, lastSeq: 0 };
  const window = 256;
  for (let i = 0; i < events.length; i += window) {
    const acks = await Promise.all(
      events.slice(i, i + window).map((e) =>
        js.publish(`${prefix}.${e.orderId}.${e.type}`, JSON.stringify(e))
      ),
    );
    result.lastSeq = Math.max(result.lastSeq, ...acks.map((a) => a.seq));
  }
  result.events = events.length;
  const fates = new Map<string, string>();
  for (const e of events) fates.set(e.orderId, e.type);
  for (const fate of fates.values()) {
    if (fate === "shipped") result.shipped++;
    else if (fate === "cancelled") result.cancelled++;
    else result.open++;
  }
  return result;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      orders: { type: "string", default: "100" },
      "first-id": { type: "string", default: "1" },
      seed: { type: "string", default: "1" },
    },
  });
  const num = (name: string, text: string, min: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) {
      console.error(`publish_orders: --${name} must be an integer >= ${min}, got ${text}`);
      Deno.exit(2);
    }
    return n;
  };
  const orders = num("orders", values.orders, 1);
  const firstId = num("first-id", values["first-id"], 0);
  const seed = num("seed", values.seed, 0);
  const server = Deno.env.get("NATS_URL") || await findEmbedded(".data") ||
    "nats://127.0.0.1:4222";
  const nc = await connect({ servers: server.split(",") });
  try {
    const r = await publishOrders(nc, jetstream(nc), { orders, firstId, seed });
    console.log(JSON.stringify({ msg: "published", server, ...r }));
  } finally {
    await nc.close();
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main());
