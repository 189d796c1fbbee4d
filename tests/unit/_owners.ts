/**
 * Finders over the project's own source for the owner checks
 * (tests/unit/owners_test.ts, tests/unit/lifecycle_owner_test.ts): code
 * without comments, the fields and members a class declares, and writes to
 * another object's fields. Small regular expressions, no TypeScript compiler.
 *
 * @module
 */
import assert from "node:assert/strict";
import { withoutComments } from "./_source.ts";

/** `text` without comments, trailing ones too (a comment may show an assignment). */
export function code(text: string): string {
  return withoutComments(text).replace(/\s\/\/.*$/gm, "");
}

/** The instance fields `CacheCore` declares. */
export function coreFields(source: string): string[] {
  const body = source.slice(source.indexOf("export class CacheCore"));
  const end = body.indexOf("\n  constructor(");
  const fields = new Set<string>();
  for (const m of body.slice(0, end).matchAll(/^ {2}(?:readonly )?([a-zA-Z]\w*)[!?]?\s*[:=]/gm)) {
    fields.add(m[1]!);
  }
  return [...fields];
}

/** Whether `text` writes `<obj>.<field>` (`=`, `+=`, `||=`…, `++`, `--`), `obj` one of `objects`. */
export function writes(text: string, objects: string, field: string): boolean {
  const target = `(?:${objects})\\.${field}\\b`;
  return new RegExp(
    `${target}\\s*(?:\\+\\+|--|(?:[-+*/%|&^]|\\|\\||&&|\\?\\?)?=(?!=))|(?:\\+\\+|--)\\s*${target}`,
  ).test(text);
}

/** The instance fields a class in `source` declares that are not `#private`. */
export function publicFields(source: string, cls: string): string[] {
  const body = source.slice(source.indexOf(`export class ${cls}`));
  const end = body.indexOf("\n  constructor(");
  const out: string[] = [];
  for (const m of body.slice(0, end).matchAll(/^ {2}(?:readonly )?([a-zA-Z]\w*)[!?]?\s*[:=]/gm)) {
    out.push(m[1]!);
  }
  return out;
}

/** The body of class `cls` in `source`, from its declaration to the next top-level `}`. */
export function classBody(source: string, cls: string): string {
  const at = source.search(new RegExp(`^(?:export )?class ${cls}\\b`, "m"));
  assert.ok(at >= 0, `class ${cls} not found`);
  const end = source.indexOf("\n}", at);
  return source.slice(at, end < 0 ? undefined : end + 2);
}

/** The fields class `cls` declares (`#private` ones too), each with its declaration. */
export function declaredFields(source: string, cls: string): Map<string, string> {
  const body = classBody(source, cls);
  const out = new Map<string, string>();
  const field = /^ {2}(?:readonly )?(#?[a-zA-Z]\w*)[!?]?\s*([:=][^\n]*)$/gm;
  for (const m of body.matchAll(field)) out.set(m[1]!, m[2]!);
  return out;
}

/** The fields of `cls` that are loose flags: typed `boolean` or set to `true`/`false`. */
export function flagFields(source: string, cls: string): string[] {
  return [...declaredFields(source, cls)]
    .filter(([, decl]) => /^:\s*boolean\b|=\s*(?:true|false)\s*;/.test(decl))
    .map(([name]) => name);
}

/** The members of `cls` (methods, accessors, constructor), each with its text. */
export function members(source: string, cls: string): { name: string; text: string }[] {
  const body = classBody(source, cls);
  const head =
    /^ {2}(?:(?:async|static|get|set|override|public|private|protected)\s+)*(\[[^\]]+\]|#?\w+)\s*(?:<[^>\n]*>)?\(/gm;
  const starts = [...body.matchAll(head)];
  return starts.map((m, i) => ({
    name: m[1]!,
    text: body.slice(m.index, i + 1 < starts.length ? starts[i + 1]!.index : undefined),
  }));
}
