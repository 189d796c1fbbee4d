/**
 * A small scanner of TypeScript source for the shape test (`shape_test.ts`):
 * no TypeScript compiler in the tree, so it drops comments, strings,
 * template texts and regular expressions, then looks for `function`
 * declarations, methods (a name, its parameters, an optional return type and
 * a body) and arrow functions, each with its first line, its length in lines
 * and its parameter count.
 *
 * @module
 */

/** A token of the scanner. */
export interface Token {
  /** An identifier, a keyword, a punctuator, or `"s"` for a string/template/regex/number. */
  t: string;
  line: number;
}

const PUNCT3 = ["...", "===", "!==", "**=", "<<=", ">>=", "&&=", "||=", "??="];
const PUNCT2 = [
  "=>",
  "==",
  "!=",
  "<=",
  ">=",
  "&&",
  "||",
  "??",
  "?.",
  "++",
  "--",
  "+=",
  "-=",
  "*=",
  "/=",
  "%=",
  "&=",
  "|=",
  "^=",
  "**",
  "<<",
];
/** After these a `/` starts a regular expression, not a division. */
const BEFORE_REGEX = new Set([
  "(",
  ",",
  "=",
  ":",
  "[",
  "!",
  "&",
  "|",
  "?",
  "{",
  "}",
  ";",
  "&&",
  "||",
  "??",
  "=>",
  "return",
  "typeof",
  "case",
  "+",
  "-",
  "*",
  "%",
  "<",
  ">",
  "==",
  "===",
  "!=",
  "!==",
  "in",
  "of",
  "void",
]);

/** The tokens of `src`: no comments, strings and template texts as one `"s"` token each. */
export function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  let line = 1;
  // Open template literals: the brace depth at which each `${` was entered.
  const templates: number[] = [];
  let depth = 0;
  const n = src.length;
  const prev = () => out[out.length - 1]?.t ?? ";";
  const readTemplate = () => {
    // At the character after "`" or after the "}" closing an interpolation.
    while (i < n) {
      const c = src[i]!;
      if (c === "\\") i += 2;
      else if (c === "`") {
        i++;
        return;
      } else if (c === "$" && src[i + 1] === "{") {
        i += 2;
        templates.push(depth);
        depth++;
        out.push({ t: "{", line });
        return;
      } else {
        if (c === "\n") line++;
        i++;
      }
    }
  };
  while (i < n) {
    const c = src[i]!;
    if (c === "\n") {
      line++;
      i++;
    } else if (c === " " || c === "\t" || c === "\r") i++;
    else if (c === "/" && src[i + 1] === "/") {
      while (i < n && src[i] !== "\n") i++;
    } else if (c === "/" && src[i + 1] === "*") {
      const end = src.indexOf("*/", i + 2);
      const stop = end < 0 ? n : end + 2;
      for (let k = i; k < stop; k++) if (src[k] === "\n") line++;
      i = stop;
    } else if (c === '"' || c === "'") {
      i++;
      while (i < n && src[i] !== c) i += src[i] === "\\" ? 2 : 1;
      i++;
      out.push({ t: "s", line });
    } else if (c === "`") {
      out.push({ t: "s", line });
      i++;
      readTemplate();
    } else if (c === "/" && BEFORE_REGEX.has(prev())) {
      i++;
      let inClass = false;
      while (i < n && (src[i] !== "/" || inClass) && src[i] !== "\n") {
        if (src[i] === "\\") i++;
        else if (src[i] === "[") inClass = true;
        else if (src[i] === "]") inClass = false;
        i++;
      }
      i++;
      while (i < n && /[a-z]/.test(src[i]!)) i++;
      out.push({ t: "s", line });
    } else if (/[A-Za-z_$#]/.test(c)) {
      let j = i + 1;
      while (j < n && /[\w$]/.test(src[j]!)) j++;
      out.push({ t: src.slice(i, j), line });
      i = j;
    } else if (/[0-9]/.test(c)) {
      let j = i + 1;
      while (j < n && /[\w.]/.test(src[j]!)) j++;
      out.push({ t: "s", line });
      i = j;
    } else {
      const three = src.slice(i, i + 3);
      const two = src.slice(i, i + 2);
      const p = PUNCT3.includes(three) ? three : PUNCT2.includes(two) ? two : c;
      i += p.length;
      if (p === "{") depth++;
      if (p === "}") {
        depth--;
        if (templates.length > 0 && templates[templates.length - 1] === depth) {
          templates.pop();
          out.push({ t: p, line });
          readTemplate();
          continue;
        }
      }
      out.push({ t: p, line });
    }
  }
  return out;
}

/** A function found by the scanner. */
export interface Fn {
  name: string;
  line: number;
  lines: number;
  params: number;
}

const NOT_A_METHOD = new Set([
  "if",
  "for",
  "while",
  "switch",
  "catch",
  "with",
  "return",
  "function",
  "typeof",
  "await",
  "new",
  "delete",
  "void",
  "in",
  "of",
  "instanceof",
  "yield",
  "super",
  "import",
]);
const OPEN: Record<string, string> = { "(": ")", "[": "]", "{": "}" };

/** Index of the token closing the bracket opened at `at`. */
function closing(tokens: Token[], at: number): number {
  let d = 0;
  for (let k = at; k < tokens.length; k++) {
    const t = tokens[k]!.t;
    if (Object.hasOwn(OPEN, t)) d++;
    else if (t === ")" || t === "]" || t === "}") {
      d--;
      if (d === 0) return k;
    }
  }
  return tokens.length - 1;
}

/** Wrappers that leave an options type an options type: `Partial<FooOptions>`. */
const OPTIONS_WRAPPERS = new Set(["Partial", "Readonly", "Required"]);

/**
 * Whether the parameter in tokens `from`..`to` (exclusive) is an options
 * object: a destructuring `{ ... }` pattern, or typed as an object literal
 * (`{ ... }`) or as a name ending in `Options` (also inside `Partial<>`,
 * `Readonly<>`, or with `| undefined`).
 */
function isOptionsParam(tokens: Token[], from: number, to: number): boolean {
  if (tokens[from]?.t === "{") return true;
  let colon = from;
  while (colon < to && tokens[colon]!.t !== ":") colon++;
  if (colon >= to) return false;
  // The type runs to a default value's `=`, if any.
  let end = colon + 1;
  while (end < to && tokens[end]!.t !== "=") {
    end = Object.hasOwn(OPEN, tokens[end]!.t) ? closing(tokens, end) + 1 : end + 1;
  }
  let type = tokens.slice(colon + 1, end).map((x) => x.t);
  if (type.at(-2) === "|" && type.at(-1) === "undefined") type = type.slice(0, -2);
  if (type[0] === "{") return closing(tokens, colon + 1) === colon + type.length;
  if (OPTIONS_WRAPPERS.has(type[0] ?? "") && type[1] === "<" && type.at(-1) === ">") {
    type = type.slice(2, -1);
  }
  return type.length === 1 && /Options$/.test(type[0]!);
}

/**
 * Number of positional parameters between the parentheses at
 * `open`..`close`: a TypeScript `this` parameter is not passed, and a last
 * parameter that is an options object (`isOptionsParam`) is not positional.
 */
function countParams(tokens: Token[], open: number, close: number): number {
  if (close === open + 1) return 0;
  let d = 0;
  let angle = 0;
  let count = 1;
  let first = true;
  let lastStart = open + 1;
  for (let k = open + 1; k < close; k++) {
    const t = tokens[k]!.t;
    if (Object.hasOwn(OPEN, t)) d++;
    else if (t === ")" || t === "]" || t === "}") d--;
    else if (t === "<") angle++;
    else if (t === ">" && angle > 0) angle--;
    else if (t === "," && d === 0 && angle === 0) {
      // A trailing comma adds no parameter.
      if (k + 1 < close) {
        count++;
        lastStart = k + 1;
      }
    }
    if (first && t === "this" && tokens[k + 1]?.t === ":") count--;
    first = false;
  }
  let lastEnd = close;
  if (tokens[close - 1]?.t === ",") lastEnd--;
  const spread = tokens[lastStart]?.t === "...";
  if (count > 0 && !spread && isOptionsParam(tokens, lastStart, lastEnd)) count--;
  return count;
}

/** Whether the `=` at `eq` is a type alias's (`type Name = ...`, `type Name<T> = ...`). */
function isTypeAlias(tokens: Token[], eq: number): boolean {
  let m = eq - 1;
  if (tokens[m]?.t === ">") {
    for (let a = 0; m >= 0; m--) {
      if (tokens[m]!.t === ">") a++;
      else if (tokens[m]!.t === "<") a--;
      if (a === 0) break;
    }
    m--;
  }
  return tokens[m - 1]?.t === "type";
}

/** Whether a parameter list has a type annotation at its top level. */
function hasTypedParams(tokens: Token[], open: number, close: number): boolean {
  let d = 0;
  for (let k = open + 1; k < close; k++) {
    const t = tokens[k]!.t;
    if (Object.hasOwn(OPEN, t)) d++;
    else if (t === ")" || t === "]" || t === "}") d--;
    else if (t === ":" && d === 0) return true;
  }
  return close === open + 1;
}

/** Skips a return type annotation starting at `k` (a `:`); returns the index after it. */
function skipReturnType(tokens: Token[], k: number, stop: Set<string>): number {
  if (tokens[k]?.t !== ":") return k;
  k++;
  let angle = 0;
  while (k < tokens.length) {
    const t = tokens[k]!.t;
    if (t === "<") angle++;
    else if (t === ">") angle--;
    else if (t === "(" && angle <= 0 && tokens[closing(tokens, k) + 1]?.t === "=>") {
      // A function type (`: () => void`): its `=>` belongs to the type.
      k = closing(tokens, k) + 1;
    } else if (t === "(" || t === "[") k = closing(tokens, k);
    else if (t === "{" && angle > 0) k = closing(tokens, k);
    else if (t === "{" && ["", ":", "|", "&", "=>"].includes(tokens[k - 1]!.t)) {
      // An object type right after `:`, `|`, `&` or `=>` belongs to the type.
      k = closing(tokens, k);
    } else if (angle <= 0 && stop.has(t)) return k;
    k++;
  }
  return k;
}

/** Every function in `src` with its first line, its length in lines and its parameter count. */
export function functionsOf(src: string): Fn[] {
  const tokens = tokenize(src);
  const out: Fn[] = [];
  const add = (name: string, open: number, close: number, body: number) => {
    const start = tokens[open]!.line;
    const end = tokens[tokens[body]!.t === "{" ? closing(tokens, body) : body]!.line;
    out.push({
      name,
      line: start,
      lines: end - start + 1,
      params: countParams(tokens, open, close),
    });
  };
  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k]!.t;
    if (t !== "(") continue;
    const close = closing(tokens, k);
    const before = tokens[k - 1]?.t ?? "";
    // `function name(...)`, `function (...)`, `function* name(...)`.
    let name: string | undefined;
    let generic = k - 1;
    if (before === ">") {
      // `name<T>(...)`: step back over the type parameters.
      let a = 0;
      for (let m = k - 1; m >= 0; m--) {
        if (tokens[m]!.t === ">") a++;
        else if (tokens[m]!.t === "<") a--;
        if (a === 0) {
          generic = m - 1;
          break;
        }
      }
    }
    const head = tokens[generic]?.t ?? "";
    const headBefore = tokens[generic - 1]?.t ?? "";
    if (head === "function" || (headBefore === "function" && /^[\w$#]+$/.test(head))) {
      name = head === "function" ? "(anonymous)" : head;
    } else if (headBefore === "*" && tokens[generic - 2]?.t === "function") name = head;
    const after = skipReturnType(tokens, close + 1, new Set(["{", "=>", ";", ",", ")"]));
    if (name !== undefined) {
      if (tokens[after]?.t === "{") add(name, k, close, after);
      continue;
    }
    if (tokens[after]?.t === "=>") {
      // An arrow function, or a function type (`x: (a: A) => T`). Under
      // noImplicitAny a function type names the type of each parameter, while
      // an arrow passed as a property (`onRecord: (key, rev) => ...`) leaves
      // them to the context: after `:` typed parameters mean a type.
      if (before === ":" && hasTypedParams(tokens, k, close)) continue;
      if (before === "=>" || before === "|" || before === "<" || before === "&") continue;
      if (before === "=" && isTypeAlias(tokens, k - 1)) continue;
      const body = after + 1;
      let label = "(arrow)";
      const assign = before === "async" ? generic - 1 : generic;
      // An arrow passed straight to a call: named after the callee, `forEach(callback)`.
      if (tokens[assign]?.t === "(" && /^[\w$#]+$/.test(tokens[assign - 1]?.t ?? "")) {
        label = `${tokens[assign - 1]!.t}(callback)`;
      }
      if (tokens[assign]?.t === "=" && /^[\w$#]+$/.test(tokens[assign - 1]?.t ?? "")) {
        label = tokens[assign - 1]!.t;
      } else if (tokens[assign]?.t === ":" && /^[\w$#]+$/.test(tokens[assign - 1]?.t ?? "")) {
        label = tokens[assign - 1]!.t;
      }
      add(label, k, close, body);
      continue;
    }
    // A method: `name(...) {`, `#name(...) {`, `get name() {`, `[Symbol.x](...) {`.
    if (tokens[after]?.t === "{" && /^[\w$#]+$/.test(head) && !NOT_A_METHOD.has(head)) {
      add(head, k, close, after);
    } else if (tokens[after]?.t === "{" && head === "]") {
      add("[computed]", k, close, after);
    }
  }
  return out;
}
