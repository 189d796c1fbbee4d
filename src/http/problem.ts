/**
 * RFC 9457 problem details: the one error shape of the HTTP facade. Handlers
 * throw {@link HttpProblem}s (or let typed kvedge errors escape) and the one
 * `onError` renders them as `application/problem+json`.
 *
 * @module
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { isMessageTooLarge } from "../nats_errors.ts";
import {
  BookmarkError,
  BucketNotFoundError,
  ClosedError,
  ConflictError,
  DecodeError,
  KeyError,
  LoaderError,
  OverloadedError,
  PermissionError,
  TooLargeError,
  UnavailableError,
  UnsupportedError,
  ValidationError,
} from "../errors.ts";

/**
 * Stable machine-readable codes of HTTP problems; clients branch on these.
 *
 * @example
 * ```ts
 * import type { ProblemCode } from "../../http.ts";
 * async function problemOf(res: Response): Promise<ProblemCode | undefined> {
 *   if (res.ok) return undefined;
 *   return ((await res.json()) as { code: ProblemCode }).code;
 * }
 * ```
 */
export type ProblemCode =
  | "bad_request"
  | "bad_key"
  | "bad_bookmark"
  | "bookmark_ahead"
  | "bookmark_not_reached"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "method_not_allowed"
  | "precondition_failed"
  | "too_large"
  | "too_deep"
  | "schema"
  | "too_many_streams"
  | "overloaded"
  | "result_too_large"
  | "headers_too_large"
  | "upstream_forbidden"
  | "loader_failed"
  | "undecodable_value"
  | "unavailable"
  | "internal";

/** Status and title of each code. */
const CODES: Record<ProblemCode, { status: ContentfulStatusCode; title: string }> = {
  bad_request: { status: 400, title: "Bad request" },
  bad_key: { status: 400, title: "Invalid key" },
  bad_bookmark: { status: 400, title: "Invalid bookmark" },
  bookmark_ahead: { status: 400, title: "Bookmark beyond the bucket" },
  bookmark_not_reached: { status: 503, title: "Bookmark not reached" },
  unauthorized: { status: 401, title: "Unauthorized" },
  forbidden: { status: 403, title: "Forbidden" },
  upstream_forbidden: { status: 403, title: "Not permitted upstream" },
  not_found: { status: 404, title: "Not found" },
  method_not_allowed: { status: 405, title: "Method not allowed" },
  precondition_failed: { status: 412, title: "Precondition failed" },
  too_large: { status: 413, title: "Content too large" },
  too_deep: { status: 422, title: "Value nests too deeply" },
  schema: { status: 422, title: "Value does not match the schema" },
  loader_failed: { status: 502, title: "Origin failed" },
  undecodable_value: { status: 502, title: "Stored value cannot be decoded" },
  unavailable: { status: 503, title: "Service unavailable" },
  too_many_streams: { status: 503, title: "Too many streams" },
  overloaded: { status: 503, title: "Too busy" },
  result_too_large: { status: 422, title: "Result too large" },
  headers_too_large: { status: 431, title: "Request header fields too large" },
  internal: { status: 500, title: "Internal error" },
};

/** Prefix of the `type` URI of every problem; the code follows it. */
export const PROBLEM_TYPE_PREFIX = "urn:kvedge:problem:";

/** Extra fields and headers of a problem. */
export interface HttpProblemOptions {
  /** Response headers to add (`Retry-After`, `Allow`, `WWW-Authenticate`…). */
  headers?: Record<string, string>;
  /** Extension members of the problem object, e.g. `issues` (must not clash with the standard ones). */
  extensions?: Record<string, unknown>;
  /** The error that caused this one (never rendered). */
  cause?: unknown;
}

/**
 * An HTTP error with a stable {@link ProblemCode}, rendered as
 * `application/problem+json` by {@link handleProblem}. It is a hono
 * `HTTPException`, so hono's own tooling recognises it.
 *
 * @example
 * ```ts
 * import { HttpProblem } from "./problem.ts";
 * const p = new HttpProblem("not_found", 'key "a" is absent');
 * console.log(p.status, p.code); // 404 "not_found"
 * ```
 */
export class HttpProblem extends HTTPException {
  /** The stable code. */
  readonly code: ProblemCode;
  /** Short human summary of the code (the same for every problem of that code). */
  readonly title: string;
  /** What went wrong in this occurrence; never contains secrets or NATS internals. */
  readonly detail: string;
  /** Headers added to the response. */
  readonly headers: Record<string, string>;
  /** Extension members. */
  readonly extensions: Record<string, unknown>;

  /** Builds the problem of `code` with a human `detail`. */
  constructor(code: ProblemCode, detail: string, options: HttpProblemOptions = {}) {
    const { status, title } = CODES[code];
    super(status, { message: detail, cause: options.cause });
    this.name = "HttpProblem";
    this.code = code;
    this.title = title;
    this.detail = detail;
    this.headers = options.headers ?? {};
    this.extensions = options.extensions ?? {};
  }

  /** The problem object as sent (without `instance` unless given). */
  toObject(instance?: string): Record<string, unknown> {
    return {
      ...this.extensions,
      type: PROBLEM_TYPE_PREFIX + this.code,
      title: this.title,
      status: this.status,
      detail: this.detail,
      code: this.code,
      ...(instance === undefined ? {} : { instance }),
    };
  }

  /** Renders the problem as an `application/problem+json` response. */
  override getResponse(instance?: string): Response {
    return new Response(JSON.stringify(this.toObject(instance)), {
      status: this.status,
      headers: {
        ...this.headers,
        "content-type": "application/problem+json",
        "cache-control": "no-store",
      },
    });
  }
}

/** Longest request path echoed back as `instance`, in characters. */
const MAX_INSTANCE_LENGTH = 256;

/**
 * Maps anything thrown while handling a request to an {@link HttpProblem}:
 * typed kvedge errors get their status, anything else is `internal` (500)
 * with a detail that reveals nothing.
 *
 * @example
 * ```ts
 * import { toProblem } from "./problem.ts";
 * import { ConflictError } from "../errors.ts";
 * console.log(toProblem(new ConflictError("lost", { key: "a" })).status); // 412
 * ```
 */
export function toProblem(err: unknown): HttpProblem {
  if (err instanceof HttpProblem) return err;
  return requestProblem(err) ?? upstreamProblem(err) ??
    (err instanceof BookmarkError ? bookmarkProblem(err) : undefined) ??
    unavailableProblem(err) ??
    (err instanceof HTTPException ? honoProblem(err) : undefined) ??
    new HttpProblem("internal", "internal error", { cause: err });
}

/** What the request asks cannot be done: too large, a lost precondition, a bad value or key. */
function requestProblem(err: unknown): HttpProblem | undefined {
  if (isMessageTooLarge(err)) {
    // Not retryable: the same value will never fit.
    return new HttpProblem(
      "too_large",
      "the value with its NATS headers is larger than the NATS server accepts (max_payload)",
      { cause: err },
    );
  }
  if (err instanceof ConflictError) {
    return new HttpProblem(
      "precondition_failed",
      `the revision of "${err.key}" does not match the precondition`,
      { cause: err },
    );
  }
  if (err instanceof ValidationError) {
    return new HttpProblem("schema", "the value does not match the bucket's schema", {
      extensions: { issues: err.issues.map((i) => ({ path: i.path, message: i.message })) },
      cause: err,
    });
  }
  if (err instanceof KeyError) {
    return new HttpProblem("bad_key", err.message.replace(/^Cannot [^:]*: /, ""), { cause: err });
  }
  return undefined;
}

/** What the edge's NATS identity, its server or the stored data refuse. */
function upstreamProblem(err: unknown): HttpProblem | undefined {
  if (err instanceof PermissionError) {
    // The edge's own NATS credentials refuse this, for every client alike: not
    // retryable, and not the client's token at fault, hence its own code.
    return new HttpProblem(
      "upstream_forbidden",
      "the edge's NATS credentials do not permit this operation",
      { cause: err },
    );
  }
  if (err instanceof DecodeError) {
    // Bad data upstream (another client wrote what this bucket's codec or
    // schema refuses), as a gateway would report it; the value is not echoed.
    return new HttpProblem(
      "undecodable_value",
      `the stored value of "${err.key}" (revision ${err.revision}) does not pass this bucket's ` +
        "codec or schema; write a valid value to replace it",
      { cause: err },
    );
  }
  if (err instanceof UnsupportedError) {
    return new HttpProblem(
      "bad_request",
      `${err.feature} needs nats-server ${err.requiredVersion} or newer and a bucket set up for it`,
      { cause: err },
    );
  }
  return undefined;
}

/** A bookmark that cannot be honoured (rule 8: nothing older than it was served). */
function bookmarkProblem(err: BookmarkError): HttpProblem {
  if (err.code === "BAD_BOOKMARK") {
    return new HttpProblem("bad_bookmark", err.message.replace(/^Cannot [^:]*: /, ""), {
      cause: err,
    });
  }
  if (err.code === "BOOKMARK_AHEAD") {
    return new HttpProblem(
      "bookmark_ahead",
      `the bookmark asks for revision ${err.revision} of "${err.bucket}", far beyond its last one`,
      { cause: err },
    );
  }
  return new HttpProblem(
    "bookmark_not_reached",
    `revision ${err.revision} of "${err.bucket}" cannot be read here now; retry later`,
    { headers: { "retry-after": "1" }, cause: err },
  );
}

/** No answer here: the loader failed, the answer is over its limit, a bound refused, or the store is unreachable. */
function unavailableProblem(err: unknown): HttpProblem | undefined {
  if (err instanceof LoaderError) {
    return new HttpProblem("loader_failed", "the origin loader failed", { cause: err });
  }
  if (err instanceof TooLargeError) {
    return new HttpProblem(
      "result_too_large",
      `the answer would be larger than ${err.limitBytes} bytes (the limit)`,
      { extensions: { maxBytes: err.limitBytes }, cause: err },
    );
  }
  if (err instanceof OverloadedError) {
    return new HttpProblem("overloaded", "too many reads are waiting for NATS; retry later", {
      headers: { "retry-after": "1" },
      extensions: { limit: err.limit },
      cause: err,
    });
  }
  if (
    err instanceof UnavailableError || err instanceof ClosedError ||
    err instanceof BucketNotFoundError
  ) {
    return new HttpProblem("unavailable", "the key-value store is unavailable; retry later", {
      headers: { "retry-after": "1" },
      cause: err,
    });
  }
  return undefined;
}

/** Hono's own exceptions (none are thrown today, but middleware may). */
function honoProblem(err: HTTPException): HttpProblem {
  const status = err.status;
  const code: ProblemCode = status === 401
    ? "unauthorized"
    : status === 403
    ? "forbidden"
    : status === 404
    ? "not_found"
    : status === 413
    ? "too_large"
    : status >= 500
    ? "internal"
    : "bad_request";
  return new HttpProblem(code, code === "internal" ? "internal error" : err.message || code, {
    cause: err,
  });
}

/**
 * The error behind a 5xx answer worth a log line of its own: not a refusal
 * by one of the facade's bounds (`overloaded`, `too_many_streams`), which is
 * counted and logged once a second per bound instead, so a flood cannot
 * flood the log.
 */
export function serverFault(err: unknown): unknown {
  if (err instanceof OverloadedError) return undefined;
  if (
    err instanceof HttpProblem && (err.code === "overloaded" || err.code === "too_many_streams")
  ) {
    return undefined;
  }
  return err;
}

/** The request path as echoed in `instance`, truncated. */
export function problemInstance(path: string): string {
  return path.length > MAX_INSTANCE_LENGTH ? path.slice(0, MAX_INSTANCE_LENGTH) + "…" : path;
}

/**
 * Renders `err` as problem+json for the request of `c`. This is the app's one
 * `onError`; route handlers may also call it to render without unwinding.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { handleProblem, HttpProblem } from "./problem.ts";
 * const app = new Hono();
 * app.onError(handleProblem);
 * app.get("/x", () => {
 *   throw new HttpProblem("forbidden", "no");
 * });
 * ```
 */
export function handleProblem(err: unknown, c: Context): Response {
  return toProblem(err).getResponse(problemInstance(c.req.path));
}
