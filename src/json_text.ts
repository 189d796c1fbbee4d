/**
 * JSON text that survives any value another client may have written: a depth
 * scan that refuses deep documents before they are parsed, and a
 * `JSON.stringify` that falls back to an explicit stack when V8's recursive
 * serialiser overflows (V8 re-serialises some values, e.g. objects with
 * index-like keys, recursively: `{"1":{"1":…}}` 100 000 deep throws
 * `RangeError: Maximum call stack size exceeded`).
 *
 * @module
 */

/**
 * The nesting depth of the JSON text in `bytes` (0 for a scalar), counting
 * `[` and `{` outside strings, or the first depth past `maxDepth` as soon as
 * it is reached. Does not validate the JSON; `JSON.parse` does that after.
 *
 * @example
 * ```ts
 * import { jsonDepth } from "./json_text.ts";
 * console.log(jsonDepth(new TextEncoder().encode('{"a":[1,"[["]}'), 64)); // 2
 * ```
 */
export function jsonDepth(bytes: Uint8Array, maxDepth: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (inString) {
      if (b === 0x5c) i++; // backslash: skip the escaped byte
      else if (b === 0x22) inString = false;
    } else if (b === 0x22) {
      inString = true;
    } else if (b === 0x5b || b === 0x7b) {
      if (++depth > max) {
        max = depth;
        if (max > maxDepth) return max;
      }
    } else if (b === 0x5d || b === 0x7d) {
      depth--;
    }
  }
  return max;
}

/**
 * `JSON.stringify(value)` for any depth. Values are what `JSON.parse`
 * returns (plain objects, arrays, strings, finite numbers, booleans, null);
 * past the depth V8 handles, an explicit stack gives the same text.
 *
 * @example
 * ```ts
 * import { stringifyJson } from "./json_text.ts";
 * let v: unknown = 1;
 * for (let i = 0; i < 100_000; i++) v = { "1": v };
 * console.log(stringifyJson(v).length); // 600001
 * ```
 */
export function stringifyJson(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    return stringifyIteratively(value);
  }
}

type Frame =
  | { kind: "array"; items: readonly unknown[]; at: number }
  | { kind: "object"; obj: Record<string, unknown>; keys: string[]; at: number; wrote: boolean };

function stringifyIteratively(root: unknown): string {
  const out: string[] = [];
  const stack: Frame[] = [];
  /** Writes a scalar, or opens a container; false when `v` is skipped in an object. */
  const emit = (v: unknown, inArray: boolean): boolean => {
    if (
      v !== null && typeof v === "object" &&
      typeof (v as { toJSON?: unknown }).toJSON === "function"
    ) {
      v = (v as { toJSON(): unknown }).toJSON();
    }
    if (v === undefined || typeof v === "function" || typeof v === "symbol") {
      if (inArray) out.push("null");
      return inArray;
    }
    if (v === null || typeof v !== "object") {
      out.push(JSON.stringify(v));
      return true;
    }
    if (Array.isArray(v)) {
      out.push("[");
      stack.push({ kind: "array", items: v, at: 0 });
    } else {
      out.push("{");
      const obj = v as Record<string, unknown>;
      stack.push({ kind: "object", obj, keys: Object.keys(obj), at: 0, wrote: false });
    }
    return true;
  };
  if (!emit(root, false)) return undefined as unknown as string;
  while (stack.length > 0) {
    const f = stack[stack.length - 1]!;
    if (f.kind === "array") {
      if (f.at >= f.items.length) {
        out.push("]");
        stack.pop();
        continue;
      }
      if (f.at > 0) out.push(",");
      emit(f.items[f.at++], true);
    } else {
      if (f.at >= f.keys.length) {
        out.push("}");
        stack.pop();
        continue;
      }
      const k = f.keys[f.at++]!;
      const v = f.obj[k];
      const mark = out.length;
      out.push((f.wrote ? "," : "") + JSON.stringify(k) + ":");
      if (emit(v, false)) f.wrote = true;
      else out.length = mark; // an undefined or function member is left out
    }
  }
  return out.join("");
}
