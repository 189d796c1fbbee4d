/**
 * Bearer-token auth for the HTTP facade. Tokens are compared as SHA-256
 * digests with `timingSafeEqual`, against every configured token without an
 * early exit, so neither the content nor the length of a token leaks through
 * timing. Both come from `./sha256.ts`, not `node:crypto`, so the facade loads
 * in every runtime (Cloudflare's workerd without `nodejs_compat` included).
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { HttpProblem } from "./problem.ts";
import { sha256, timingSafeEqual } from "./sha256.ts";

/** RFC 6750 `b64token`: what a bearer token may look like. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
const BEARER = /^[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*) *$/;

/** Options of {@link requireToken}. */
export interface RequireTokenOptions {
  /**
   * Tokens that grant access. Must not be empty (for open access, do not
   * install the middleware). Each must be an RFC 6750 `b64token`.
   */
  tokens: readonly string[];
  /**
   * Tokens that are valid but grant less, e.g. read tokens on a write route:
   * presenting one answers 403 `forbidden` instead of 401. Default none.
   */
  insufficientTokens?: readonly string[];
  /** `realm` of the `WWW-Authenticate` challenge. Default `"kvedge"`. */
  realm?: string;
  /** What the token is needed for, in the problem detail. Default `"this request"`. */
  action?: string;
}

function digest(token: string): Uint8Array {
  return sha256(token);
}

/** A set of tokens matched in constant time. */
class TokenSet {
  readonly #digests: Uint8Array[];
  constructor(tokens: readonly string[]) {
    this.#digests = tokens.map(digest);
  }
  /** Whether `presented` is one of the tokens; looks at every one. */
  has(presented: Uint8Array): boolean {
    let found = false;
    for (const d of this.#digests) {
      // No short-circuit: the number of comparisons must not depend on the input.
      found = timingSafeEqual(d, presented) || found;
    }
    return found;
  }
}

function checkTokens(tokens: readonly string[], what: string): void {
  for (const t of tokens) {
    if (typeof t !== "string" || !B64TOKEN.test(t)) {
      // Never echo the token itself: it is a secret.
      throw new TypeError(
        `Cannot require token: every ${what} must be a non-empty RFC 6750 token ([A-Za-z0-9-._~+/]+=*)`,
      );
    }
  }
}

/**
 * The check behind {@link requireToken}, as a plain function of the
 * `Authorization` header: returns when the request may pass, throws the
 * 401/403 {@link HttpProblem} otherwise. For hot paths that run outside the
 * middleware chain.
 *
 * @example
 * ```ts
 * import { tokenCheck } from "./auth.ts";
 * const check = tokenCheck({ tokens: ["s3cret"] });
 * check("Bearer s3cret"); // passes
 * ```
 */
export function tokenCheck(options: RequireTokenOptions): (authorization: string | null) => void {
  if (!Array.isArray(options.tokens) || options.tokens.length === 0) {
    throw new RangeError('Cannot require token: "tokens" must list at least one token');
  }
  checkTokens(options.tokens, "token");
  checkTokens(options.insufficientTokens ?? [], "insufficient token");
  const granted = new TokenSet(options.tokens);
  const lesser = new TokenSet(options.insufficientTokens ?? []);
  const realm = (options.realm ?? "kvedge").replace(/["\\]/g, "");
  const action = options.action ?? "this request";
  const challenge = `Bearer realm="${realm}"`;

  return function checkToken(header) {
    if (header === null) {
      throw new HttpProblem("unauthorized", `a bearer token is required for ${action}`, {
        headers: { "www-authenticate": challenge },
      });
    }
    const m = BEARER.exec(header);
    if (m === null) {
      throw new HttpProblem("unauthorized", "the Authorization header is not a bearer token", {
        headers: { "www-authenticate": `${challenge}, error="invalid_request"` },
      });
    }
    const presented = digest(m[1]!);
    if (granted.has(presented)) return;
    if (lesser.has(presented)) {
      throw new HttpProblem("forbidden", `the token does not grant ${action}`, {
        headers: { "www-authenticate": `${challenge}, error="insufficient_scope"` },
      });
    }
    throw new HttpProblem("unauthorized", "the bearer token is not valid", {
      headers: { "www-authenticate": `${challenge}, error="invalid_token"` },
    });
  };
}

/**
 * Middleware that lets a request through only with `Authorization: Bearer
 * <token>` naming one of `tokens`. Without a token, or with an unknown one:
 * 401 `unauthorized` with `WWW-Authenticate: Bearer`. With one of
 * `insufficientTokens`: 403 `forbidden`.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { requireToken } from "./auth.ts";
 * const app = new Hono();
 * app.put("/x", requireToken({ tokens: ["s3cret"], insufficientTokens: ["r3ad"] }), (c) => c.text("ok"));
 * ```
 */
export function requireToken(options: RequireTokenOptions): MiddlewareHandler {
  return tokenGuard(tokenCheck(options));
}

/** The middleware of a {@link tokenCheck}, so that a route and a hot path share one check. */
export function tokenGuard(check: (authorization: string | null) => void): MiddlewareHandler {
  return async function requireToken(c, next) {
    check(c.req.raw.headers.get("authorization"));
    await next();
  };
}
