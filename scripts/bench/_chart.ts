/**
 * A small line chart with a log x axis, as SVG text: the scale scenario draws
 * each of its curves with it, next to the JSON results.
 *
 * @module
 */

/** A count as the axes and row names show it: 1k, 100k, 1M. */
export function label(n: number): string {
  return n >= 1e6 ? `${n / 1e6}M` : n >= 1000 ? `${n / 1000}k` : String(n);
}

interface Series {
  name: string;
  points: [number, number][];
}

/** A small line chart (log x axis) as SVG text. */
export function lineChart(title: string, xLabel: string, yLabel: string, series: Series[]): string {
  const W = 480, H = 300, L = 60, R = 120, T = 30, B = 45;
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const x0 = Math.log10(Math.min(...xs)), x1 = Math.log10(Math.max(...xs));
  const y1 = Math.max(...ys, 0) * 1.1 || 1;
  const px = (x: number) => L + (x1 === x0 ? 0.5 : (Math.log10(x) - x0) / (x1 - x0)) * (W - L - R);
  const py = (y: number) => H - B - (y / y1) * (H - T - B);
  const colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
  const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="16" text-anchor="middle" font-size="13">${esc(title)}</text>`,
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="black"/>`,
    `<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>`,
    `<text x="${(L + W - R) / 2}" y="${H - 8}" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text x="14" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 14 ${
      (T + H - B) / 2
    })">${esc(yLabel)}</text>`,
  ];
  for (const x of [...new Set(xs)].sort((a, b) => a - b)) {
    out.push(
      `<text x="${px(x)}" y="${H - B + 14}" text-anchor="middle">${label(x)}</text>`,
    );
  }
  for (let i = 0; i <= 4; i++) {
    const y = (y1 * i) / 4;
    out.push(
      `<text x="${L - 4}" y="${py(y) + 4}" text-anchor="end">${
        y >= 100 ? y.toFixed(0) : y.toPrecision(2)
      }</text>`,
      `<line x1="${L}" y1="${py(y)}" x2="${W - R}" y2="${py(y)}" stroke="#ddd"/>`,
    );
  }
  series.forEach((s, i) => {
    const c = colours[i % colours.length];
    const pts = s.points.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(" ");
    out.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts}"/>`);
    for (const [x, y] of s.points) {
      out.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${c}"/>`);
    }
    out.push(
      `<text x="${W - R + 8}" y="${T + 14 + i * 16}" fill="${c}">${esc(s.name)}</text>`,
    );
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}
