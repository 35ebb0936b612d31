// Pure helpers of the browser side-by-side (bench.mjs): the schedule of interleaved visits, how
// a batch is split over workers, medians, and the table. No browser here, so parse.test.mjs can
// check them with `node --test`.

// The rows, in the order of the table. `gpu`: a WebGPU row (software-GPU numbers here).
export const ROWS = [
  { id: 'ort-wasm-1', label: 'onnxruntime-web, wasm EP, 1 thread', gpu: false },
  { id: 'ort-wasm-n', label: 'onnxruntime-web, wasm EP, N threads (COOP/COEP)', gpu: false },
  { id: 'ours-flex-1', label: 'ours, Flex-wasm, 1 worker', gpu: false },
  { id: 'ours-flex-n', label: 'ours, Flex-wasm, N workers', gpu: false },
  { id: 'ort-webgpu', label: 'onnxruntime-web, webgpu EP (software GPU)', gpu: true },
  { id: 'ours-webgpu', label: 'ours, WebGPU (software GPU)', gpu: true },
];

// Images per worker when `batch` images go to `workers` workers: the first `batch % workers`
// take one more; workers with none are left out. splitBatch(8, 3) = [3, 3, 2].
export function splitBatch(batch, workers) {
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`batch: expected a whole number >= 1, found ${batch}`);
  if (!Number.isInteger(workers) || workers < 1) throw new Error(`workers: expected a whole number >= 1, found ${workers}`);
  const base = Math.floor(batch / workers);
  const extra = batch % workers;
  return Array.from({ length: Math.min(workers, batch) }, (_, i) => base + (i < extra ? 1 : 0));
}

export function median(xs) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// The visits of one round: every (row, batch), the rows rotated by the round so that no row is
// always first after another's work; batches in order within a row's turn.
export function roundSchedule(rowIds, batches, round) {
  const k = ((round % rowIds.length) + rowIds.length) % rowIds.length;
  const rotated = [...rowIds.slice(k), ...rowIds.slice(0, k)];
  return rotated.flatMap((row) => batches.map((batch) => ({ row, batch })));
}

// Median per (row, batch) from the samples [{row, batch, round, ms}] (warm-up rounds < 0 left
// out); `null` where a row has no sample at that batch. Errors per row are kept apart.
export function summarise(samples, batches) {
  const out = {};
  for (const { row, batch, round, ms } of samples) {
    if (round < 0) continue;
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) throw new Error(`sample of ${row} at batch ${batch}: expected a time in ms, found ${ms}`);
    ((out[row] ??= {})[batch] ??= []).push(ms);
  }
  const table = {};
  for (const row of Object.keys(out)) {
    table[row] = {};
    for (const b of batches) {
      const xs = out[row][b] || [];
      table[row][b] = xs.length ? { median: median(xs), n: xs.length, min: Math.min(...xs), max: Math.max(...xs) } : null;
    }
  }
  return table;
}

// The ratio of each row to `base` taken within each round (the median of the row's samples in
// that round over the base's in the same round, at the same batch: neighbours in time, so a
// load that comes and goes cancels), then the median over rounds, with its range.
export function pairedRatios(samples, batches, base = 'ort-wasm-1') {
  const per = {}; // row -> batch -> round -> [ms]
  for (const { row, batch, round, ms } of samples) if (round >= 0) (((per[row] ??= {})[batch] ??= {})[round] ??= []).push(ms);
  const out = {};
  for (const row of Object.keys(per)) {
    out[row] = {};
    for (const b of batches) {
      const mine = per[row][b] || {};
      const theirs = (per[base] || {})[b] || {};
      const rs = Object.keys(mine).filter((r) => theirs[r]).map((r) => median(mine[r]) / median(theirs[r]));
      out[row][b] = rs.length ? { median: median(rs), min: Math.min(...rs), max: Math.max(...rs), rounds: rs.length } : null;
    }
  }
  return out;
}

const fmt = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

// The markdown table: ms per evaluation (median, [min-max], n) per batch, and the ratio of each
// CPU row to ORT-wasm at 1 thread (per round when `ratios` is given). `errors`: {row: message} for rows that could not run.
// `ratios`: pairedRatios' output; without it the ratio of the medians.
export function markdownTable(table, batches, { rows = ROWS, errors = {}, n = 'N', ratios = null } = {}) {
  const head = `| row | ${batches.map((b) => `batch ${b} (ms)`).join(' | ')} | ${batches.map((b) => `/ ORT 1 thread at ${b}`).join(' | ')} |`;
  const sep = `|---|${batches.map(() => '---:').join('|')}|${batches.map(() => '---:').join('|')}|`;
  const base = table['ort-wasm-1'] || {};
  const lines = [head, sep];
  for (const r of rows) {
    const label = r.label.replace(/\bN\b/g, String(n));
    if (errors[r.id]) {
      lines.push(`| ${label} | ${batches.map(() => 'failed').join(' | ')} | ${batches.map(() => '').join(' | ')} |`);
      continue;
    }
    const cells = table[r.id];
    if (!cells) continue;
    const times = batches.map((b) => (cells[b] ? `${fmt(cells[b].median)} [${fmt(cells[b].min)}-${fmt(cells[b].max)}, n ${cells[b].n}]` : 'not run'));
    const ratio = (b) => {
      if (r.gpu || !cells[b]) return '';
      const p = ratios && ratios[r.id] && ratios[r.id][b];
      if (p) return r.id === 'ort-wasm-1' ? '1' : `${p.median.toFixed(2)}x [${p.min.toFixed(2)}-${p.max.toFixed(2)}]`;
      return base[b] ? `${(cells[b].median / base[b].median).toFixed(2)}x` : '';
    };
    lines.push(`| ${label} | ${times.join(' | ')} | ${batches.map(ratio).join(' | ')} |`);
  }
  return lines.join('\n');
}

// Parses bench.mjs's command line: --rounds R --gpu-rounds G --reps K --batches 1,8,64
// --workers N --rows a,b --out FILE --alt-pkg DIR --alt-label TEXT (DIR: another wasm build under
// target/browser-bench/, timed as one more row, 'ours-flex-1-alt', with 1 worker).
export function parseArgs(argv) {
  const o = { rounds: 5, gpuRounds: 2, reps: 3, batches: [1, 8, 64], workers: 0, rows: ROWS.map((r) => r.id), out: null, t: 0.5, altPkg: null, altLabel: 'another build' };
  const need = (i) => {
    if (i + 1 >= argv.length) throw new Error(`${argv[i]}: expected a value`);
    return argv[i + 1];
  };
  const int = (flag, s, min) => {
    const v = Number(s);
    if (!Number.isInteger(v) || v < min) throw new Error(`${flag}: expected a whole number >= ${min}, found ${s}`);
    return v;
  };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i];
    const v = need(i);
    if (flag === '--rounds') o.rounds = int(flag, v, 1);
    else if (flag === '--gpu-rounds') o.gpuRounds = int(flag, v, 0);
    else if (flag === '--reps') o.reps = int(flag, v, 1);
    else if (flag === '--workers') o.workers = int(flag, v, 1);
    else if (flag === '--batches') o.batches = v.split(',').map((b) => int(flag, b, 1));
    else if (flag === '--out') o.out = v;
    else if (flag === '--alt-pkg') o.altPkg = v;
    else if (flag === '--alt-label') o.altLabel = v;
    else if (flag === '--rows') {
      o.rows = v.split(',');
      const known = new Set(ROWS.map((r) => r.id));
      for (const r of o.rows) if (!known.has(r)) throw new Error(`--rows: unknown row ${r}; expected some of ${[...known].join(', ')}`);
    } else throw new Error(`unknown option ${flag}`);
  }
  return o;
}
