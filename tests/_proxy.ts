/**
 * The cuttable TCP proxy, shared with the bench harness: see
 * `testing/proxy.ts`.
 *
 * @module
 */
export { type Proxy, startProxy } from "../testing/proxy.ts";
