/**
 * The cuttable TCP proxy, shared with the bench harness: see
 * `testing/proxy.ts`.
 *
 * @module
 */
export { type Frame, type Proxy, type ProxyOptions, startProxy } from "../testing/proxy.ts";
