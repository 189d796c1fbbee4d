/**
 * What a server process has used, read from `/proc`: its CPU time and its
 * resident memory, for the per-request figures of the HTTP bench (`http.ts`).
 *
 * @module
 */

/**
 * CPU seconds (user + system) process `pid` has used so far, from
 * `/proc/<pid>/stat`; undefined where there is no such file. Per request, it
 * is less disturbed than rps by other jobs on the machine.
 */
export function cpuSeconds(pid: number, ticksPerSecond: number): number | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // After "(comm) ": state is field 3, utime field 14, stime field 15.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / ticksPerSecond;
  } catch {
    return undefined;
  }
}

/** The kernel's clock ticks per second (`getconf CLK_TCK`), 100 if unknown. */
export async function clockTicks(): Promise<number> {
  try {
    const out = await new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped" }).output();
    const n = Number(new TextDecoder().decode(out.stdout).trim());
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
}

/** Resident memory of process `pid` (all its isolates), in MB; undefined where unknown. */
export function rssMb(pid: number): number | undefined {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]);
    return Number.isFinite(kb) ? kb / 1024 : undefined;
  } catch {
    return undefined;
  }
}
