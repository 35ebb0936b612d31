// node --test: the harness's pure parts (stats.mjs). The benchmark itself is not a test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ROWS, markdownTable, median, pairedRatios, parseArgs, roundSchedule, splitBatch, summarise } from './stats.mjs';

test('a batch is split over workers as the pool does, none left idle with work', () => {
  assert.deepEqual(splitBatch(8, 3), [3, 3, 2]);
  assert.deepEqual(splitBatch(64, 2), [32, 32]);
  assert.deepEqual(splitBatch(1, 2), [1]);
  for (const [b, n] of [[1, 1], [7, 4], [64, 8], [5, 16]]) assert.equal(splitBatch(b, n).reduce((a, x) => a + x, 0), b);
  assert.throws(() => splitBatch(0, 2), /batch/);
  assert.throws(() => splitBatch(4, 0), /workers/);
});

test('medians, and summaries that leave the warm-up out', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  const s = summarise(
    [
      { row: 'ort-wasm-1', batch: 8, round: -1, ms: 1000 },
      { row: 'ort-wasm-1', batch: 8, round: 0, ms: 10 },
      { row: 'ort-wasm-1', batch: 8, round: 1, ms: 30 },
      { row: 'ort-wasm-1', batch: 8, round: 1, ms: 20 },
    ],
    [1, 8],
  );
  assert.deepEqual(s['ort-wasm-1'][8], { median: 20, n: 3, min: 10, max: 30 });
  assert.equal(s['ort-wasm-1'][1], null);
  assert.throws(() => summarise([{ row: 'x', batch: 1, round: 0, ms: NaN }], [1]), /expected a time/);
});

test('every round visits every row at every batch, rotated', () => {
  const ids = ['a', 'b', 'c'];
  for (let r = 0; r < 4; r++) {
    const visits = roundSchedule(ids, [1, 8], r);
    assert.equal(visits.length, 6);
    assert.equal(new Set(visits.map((v) => v.row + v.batch)).size, 6);
  }
  assert.equal(roundSchedule(ids, [1], 0)[0].row, 'a');
  assert.equal(roundSchedule(ids, [1], 1)[0].row, 'b');
});

test('the table gives ratios to ORT at 1 thread for CPU rows only, and names failures', () => {
  const cell = (m) => ({ median: m, n: 3, min: m, max: m });
  const table = { 'ort-wasm-1': { 8: cell(100) }, 'ours-flex-1': { 8: cell(80) }, 'ours-webgpu': { 8: cell(9000) } };
  const md = markdownTable(table, [8], { errors: { 'ort-webgpu': 'no adapter' }, n: 2 });
  const lines = md.split('\n');
  assert.match(lines.find((l) => l.startsWith('| ours, Flex-wasm, 1 worker')), /\| 0\.80x \|$/);
  assert.match(lines.find((l) => l.startsWith('| ours, WebGPU')), /\|  \|$/);
  assert.match(lines.find((l) => l.startsWith('| onnxruntime-web, webgpu')), /failed/);
  assert.ok(!md.includes('N threads'), 'N is replaced by the worker count');
  assert.equal(ROWS.length, 6);
});

test('options are checked', () => {
  assert.deepEqual(parseArgs(['--batches', '1,8', '--rounds', '2']).batches, [1, 8]);
  assert.throws(() => parseArgs(['--rounds', '0']), /--rounds/);
  assert.throws(() => parseArgs(['--rows', 'nope']), /unknown row/);
  assert.throws(() => parseArgs(['--reps']), /expected a value/);
  assert.throws(() => parseArgs(['--speed', '1']), /unknown option/);
});

test('ratios are taken within each round, then their median', () => {
  const s = (row, round, ms) => ({ row, batch: 8, round, ms });
  // The load doubles in round 1: both rows slow down, the paired ratio stays 0.5.
  const samples = [s('ort-wasm-1', 0, 100), s('ours-flex-1', 0, 50), s('ort-wasm-1', 1, 200), s('ours-flex-1', 1, 100), s('ours-flex-1', -1, 9999)];
  const r = pairedRatios(samples, [8]);
  assert.deepEqual(r['ours-flex-1'][8], { median: 0.5, min: 0.5, max: 0.5, rounds: 2 });
  const md = markdownTable(summarise(samples, [8]), [8], { ratios: r });
  assert.match(md.split('\n').find((l) => l.startsWith('| ours, Flex-wasm, 1 worker')), /0\.50x \[0\.50-0\.50\]/);
});
