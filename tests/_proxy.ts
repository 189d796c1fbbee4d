/**
 * The cuttable TCP proxy, shared with the bench harness (see
 * `testing/proxy.ts`), and the set-up several tests share: a server, a
 * bucket, and a frame-reading proxy in front of the server for the edge.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { type KV, Kvm, type KvOptions } from "@nats-io/kv";
import { type Proxy, startProxy } from "../testing/proxy.ts";
import { connectTo, startServer, uniqueBucket } from "./_setup.ts";

export { type Frame, type Proxy, type ProxyOptions, startProxy } from "../testing/proxy.ts";

/** What {@linkcode serverBehindProxy} started; disposing it stops all of it. */
export interface ProxiedServer extends AsyncDisposable {
  /** A proxy that reads NATS frames (`hold`, `cut`…): give the edge `proxy.url`. */
  proxy: Proxy;
  /** A direct connection to the server (the test's writer). */
  nc: NatsConnection;
  /** A fresh bucket on the server. */
  bucket: string;
  /** The bucket, through `nc`. */
  kv: KV;
}

/**
 * Starts a server, connects to it directly, creates a fresh bucket (with
 * `bucketOptions`) and puts a frame-reading TCP proxy in front of the server,
 * for an edge to connect through.
 *
 * @example
 * ```ts ignore
 * await using t = await serverBehindProxy({ history: 5 });
 * await using c = await openCache({ servers: t.proxy.url, bucket: t.bucket, local: { maxItems: 10 } });
 * t.proxy.hold((f) => f.from === "server");
 * ```
 */
export async function serverBehindProxy(
  bucketOptions: Partial<KvOptions> = {},
): Promise<ProxiedServer> {
  const srv = await startServer();
  const proxy = startProxy(Number(new URL(srv.tcpUrl).port), "tcp", { frames: true });
  try {
    const nc = await connectTo(srv);
    const bucket = uniqueBucket();
    const kv = await new Kvm(nc).create(bucket, bucketOptions).catch(async (err) => {
      await nc.close();
      throw err;
    });
    return {
      proxy,
      nc,
      bucket,
      kv,
      async [Symbol.asyncDispose]() {
        await nc.close();
        await proxy[Symbol.asyncDispose]();
        await srv[Symbol.asyncDispose]();
      },
    };
  } catch (err) {
    await proxy[Symbol.asyncDispose]();
    await srv[Symbol.asyncDispose]();
    throw err;
  }
}

/**
 * The stream sequence of a JetStream delivery to a consumer of `stream`, read
 * from its reply subject, or undefined for any other frame (as the watcher
 * reads it: v1 `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>…`, v2 with a
 * domain and account hash after ACK).
 *
 * @example
 * ```ts ignore
 * proxy.hold((f) => (deliveredSeq(f.reply, `KV_${bucket}`) ?? 0) > 50);
 * ```
 */
export function deliveredSeq(reply: string | undefined, stream: string): number | undefined {
  const t = reply?.split(".");
  if (t === undefined || t[0] !== "$JS" || t[1] !== "ACK") return undefined;
  const v2 = t.length >= 11;
  if (t[v2 ? 4 : 2] !== stream) return undefined;
  return Number(t[v2 ? 7 : 5]);
}
