// Prints the markdown table of a results file of bench.mjs again (e.g. after a change to the
// table's layout): node bench/browser/table.mjs target/browser-bench/results-....json
import { readFileSync } from 'node:fs';
import { ROWS, markdownTable, pairedRatios, summarise } from './stats.mjs';

const file = process.argv[2];
if (!file) {
  console.error('usage: node bench/browser/table.mjs RESULTS.json');
  process.exit(2);
}
const r = JSON.parse(readFileSync(file, 'utf8'));
const batches = r.options.batches;
const rows = [...ROWS.filter((x) => r.options.rows.includes(x.id))];
if (r.options.altPkg) rows.push({ id: 'ours-flex-1-alt', label: `ours, Flex-wasm, 1 worker, ${r.options.altLabel}`, gpu: false });
console.log(markdownTable(summarise(r.samples, batches), batches, { rows, errors: r.errors, n: r.workers, ratios: pairedRatios(r.samples, batches) }));
