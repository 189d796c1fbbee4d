/**
 * The cuttable TCP proxy, shared with the bench harness: see
 * `scripts/_proxy.ts`.
 *
 * @module
 */
export { type Frame, type Proxy, type ProxyOptions, startProxy } from "../scripts/_proxy.ts";
