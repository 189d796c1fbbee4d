/**
 * The cuttable TCP proxy, shared with the bench harness: see
 * `scripts/_proxy.ts`.
 *
 * @module
 */
export { type Proxy, startProxy } from "../scripts/_proxy.ts";
