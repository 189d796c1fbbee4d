/**
 * What the connected nats-server can do, decided from the version it reports
 * in its INFO (never assumed): per-key TTL and limit markers need 2.11.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { UnsupportedError } from "./errors.ts";

/** The first nats-server with per-message TTL (`Nats-TTL`) and subject delete markers. */
export const PER_KEY_TTL_VERSION = "2.11.0";

/** The version the server reported when the connection was made, e.g. `"2.9.10"`. */
export function serverVersion(nc: Pick<NatsConnection, "info">): string | undefined {
  return nc.info?.version;
}

/** Whether `version` (`"2.15.2"`, `"2.11.0-RC.1"`) is at least `minimum`. */
export function versionAtLeast(version: string | undefined, minimum: string): boolean {
  if (!version) return false;
  const have = parts(version);
  const need = parts(minimum);
  for (let i = 0; i < 3; i++) {
    if (have[i]! !== need[i]!) return have[i]! > need[i]!;
  }
  return true;
}

function parts(version: string): number[] {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [0, 0, 0];
}

/**
 * Throws {@linkcode UnsupportedError} unless the connected server is at least
 * `requiredVersion`; `action` starts the message (`Cannot <action>: ...`).
 */
export function assertServerVersion(
  nc: NatsConnection,
  need: { feature: string; requiredVersion: string; action: string },
): void {
  const { feature, requiredVersion, action } = need;
  const version = serverVersion(nc);
  if (versionAtLeast(version, requiredVersion)) return;
  throw new UnsupportedError(
    `Cannot ${action}: ${feature} needs nats-server ${
      requiredVersion.replace(/\.0$/, "")
    } or newer (connected to ${version ?? "an unknown version"})`,
    { feature, requiredVersion, ...(version ? { serverVersion: version } : {}) },
  );
}
