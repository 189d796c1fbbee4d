/**
 * What the `deno task kv` commands share: the command context, the JetStream
 * handles, opening a bucket, checking bucket/key/filter arguments, and the
 * `--json`-or-human output switch.
 *
 * @module
 */
import { type KV, Kvm } from "@nats-io/kv";
import {
  jetstream,
  type JetStreamManager,
  jetstreamManager,
  type StreamInfo,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { assertFilter, assertKey, bucketProblem } from "../../src/keys.ts";
import { kvStreamName } from "../../src/kv_layout.ts";
import { isStreamNotFound } from "../../src/nats_errors.ts";
import type { CommandSpec, FlagValues } from "../cli/args.ts";
import { CliError, UsageError } from "../cli/errors.ts";
import { println, quote } from "../cli/output.ts";

/** What every command gets: its arguments, flags, and a lazily opened connection. */
export interface Ctx {
  cmd: CommandSpec;
  args: string[];
  flags: FlagValues;
  json: boolean;
  connect(): Promise<NatsConnection>;
}

/** The JetStream manager of the command's connection, with its timeout. */
export async function manager(ctx: Ctx): Promise<JetStreamManager> {
  const nc = await ctx.connect();
  return await jetstreamManager(nc, { timeout: ctx.flags.timeout as number });
}

/** The KV manager of `nc`, with the command's timeout. */
export function kvm(nc: NatsConnection, ctx: Ctx): Kvm {
  return new Kvm(jetstream(nc, { timeout: ctx.flags.timeout as number }));
}

/** Stream info of bucket `name`, or a one-line "does not exist". */
export async function bucketInfo(jsm: JetStreamManager, name: string): Promise<StreamInfo> {
  try {
    return await jsm.streams.info(kvStreamName(name));
  } catch (err) {
    if (isStreamNotFound(err)) {
      throw new CliError(`bucket ${quote(name)} does not exist`);
    }
    throw err;
  }
}

/** Opens an existing bucket, failing with one line if it is absent. */
export async function openBucket(ctx: Ctx, name: string): Promise<{ kv: KV; info: StreamInfo }> {
  const nc = await ctx.connect();
  const jsm = await manager(ctx);
  const info = await bucketInfo(jsm, name);
  const kv = await kvm(nc, ctx).open(name);
  return { kv, info };
}

/** The bucket argument, or a usage/CLI error if it is missing or invalid. */
export function checkBucket(name: string | undefined): string {
  if (name === undefined) throw new UsageError("missing argument <bucket>");
  const problem = bucketProblem(name);
  if (problem) throw new CliError(`invalid bucket name ${quote(name)}: ${problem}`);
  return name;
}

/** The key argument, or a usage/CLI error if it is missing or invalid for `action`. */
export function checkKey(key: string | undefined, action: string): string {
  if (key === undefined) throw new UsageError("missing argument <key>");
  try {
    assertKey(key, `${action} ${quote(key)}`);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  return key;
}

/** A key filter, or a CLI error if it is invalid for `action`. */
export function checkFilter(filter: string, action: string): string {
  try {
    assertFilter(filter, `${action} ${quote(filter)}`);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  return filter;
}

/** The value argument, or stdin when it is `-` or absent. */
export async function valueOf(arg: string | undefined): Promise<Uint8Array> {
  if (arg === undefined || arg === "-") return await new Response(Deno.stdin.readable).bytes();
  return new TextEncoder().encode(arg);
}

/** Prints `json` under `--json`, else the human text (nothing if it is undefined). */
export function out(ctx: Ctx, json: unknown, human: () => string | undefined): void {
  if (ctx.json) {
    println(JSON.stringify(json));
    return;
  }
  const text = human();
  if (text !== undefined) println(text);
}
