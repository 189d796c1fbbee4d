/**
 * The `prefix` of listings and watches: its check, and the NATS filter that
 * narrows a scan to it.
 *
 * @module
 */
import { filterProblem, MAX_KEY_LENGTH } from "../keys.ts";
import { HttpProblem } from "./problem.ts";

const KEY_PREFIX = /^[-/_=.a-zA-Z0-9]*$/;

/** A NATS filter that narrows a listing to `prefix` (the rest is a `startsWith`). */
export function filterForPrefix(prefix: string): string {
  const dot = prefix.lastIndexOf(".");
  if (dot <= 0) return ">";
  const filter = prefix.slice(0, dot) + ".>";
  return filterProblem(filter) === undefined ? filter : ">";
}

/** A `prefix` query parameter, checked: only key characters; absent or empty is `""`. */
export function checkPrefix(prefix: string | undefined): string {
  if (prefix === undefined || prefix === "") return "";
  if (prefix.length > MAX_KEY_LENGTH || !KEY_PREFIX.test(prefix)) {
    throw new HttpProblem(
      "bad_request",
      "prefix may only contain key characters (letters, digits, - / _ = .)",
    );
  }
  return prefix;
}
