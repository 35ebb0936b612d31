// The page's image tools follow an imported colour model's shape (issue 21), run by diffusers.mjs
// on the tiny 3x16x16 RGB fixture it imported:
// - the Inverse problems block offers colorization and the factors that divide 16, takes an image
//   file (a 16x16 RGB PNG written here, so its pixels arrive unscaled), and solves
//   super-resolution x2 and colorization by DPS as `native-cli solve --method dps` does on the
//   same PNG, seed, steps, zeta' and noise: the PSNR of the result and of the baseline agree
//   within PSNR_TOLERANCE dB (the page's floats carry the wasm tolerance of 5e-4 (1 + |x|),
//   which moves a PSNR by far less), while the command line's own run with the next seed lands
//   further away than that (the check can tell runs apart);
// - the inpainting canvas holds the model's 3x16x16 images: From first sample copies the first
//   sample in colour, a stroke of the eraser makes a hole, and Fill the hole returns four 3x16x16
//   images whose kept pixels are the canvas's (projection keeps them up to the last step's noise,
//   < KEPT_TOLERANCE) while the hole is filled differently from the canvas; with the x0-hat
//   previews box ticked, the fill's denoised estimate is drawn beside it.
//
//   import { run as inverseChecks } from './diffusers-inverse.mjs';
//   await inverseChecks({ p, check, report, tmp, modelDir, native });
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';

const long = { timeout: 600000 };
const STEPS = 10, SEED = 3, ZETA = 1, NOISE = 0.05;
const PSNR_TOLERANCE = 0.02; // dB
const KEPT_TOLERANCE = 0.05; // of the [-1, 1] scale

// CRC-32 of PNG chunks (ISO 3309, the table-driven form).
const CRC = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
// An 8-bit RGB PNG of `w` x `h` from row-major [r, g, b] bytes.
export function writeRgbPng(file, w, h, rgb) {
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; ihdr[9] = 2; // 8 bits, truecolour
  const raw = Buffer.alloc(h * (1 + 3 * w));
  for (let y = 0; y < h; y++) {
    raw[y * (1 + 3 * w)] = 0; // filter: none
    for (let i = 0; i < 3 * w; i++) raw[y * (1 + 3 * w) + 1 + i] = rgb[y * 3 * w + i];
  }
  writeFileSync(file, Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]));
}

export async function run({ p, check, report, tmp, modelDir, native }) {
  const r = (report.inverse = {});
  // The block's menus for the 3x16x16 model.
  await p.waitForFunction(() => document.body.dataset.inverseShape === '3x16x16' && document.body.dataset.inverseReady !== 'running', null, long);
  const menus = await p.evaluate(() => ({
    tasks: [...document.querySelectorAll('#inv-task option')].map((o) => o.value),
    factors: [...document.querySelectorAll('#inv-factor option')].map((o) => o.value),
    sources: [...document.querySelectorAll('#inv-source option')].map((o) => o.value),
  }));
  r.menus = menus;
  check(menus.tasks.includes('colorize') && menus.tasks.includes('super-resolution') && menus.factors.join() === '2,4' &&
    menus.sources.includes('file') && !menus.sources.includes('0'),
  `inverse: the menus follow the 3x16x16 RGB card (tasks ${menus.tasks.join(' ')}; factors ${menus.factors.join(' ')}; sources ${menus.sources.join(' ')})`);

  // A 16x16 RGB picture: two gradients and a disc, inside (0, 255).
  const rgb = [];
  for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) {
    const disc = (x - 9.5) ** 2 + (y - 6.5) ** 2 < 25;
    rgb.push(30 + 12 * x, 30 + 12 * y, disc ? 210 : 50);
  }
  const png = join(tmp, 'picture.png');
  writeRgbPng(png, 16, 16, rgb);

  const cliSolve = (task, seed) => JSON.parse(native('solve', '--model', modelDir, '--task', task, '--method', 'dps', '--sampler', 'ancestral',
    '--input', png, ...(task === 'super-resolution' ? ['--factor', '2'] : []), '--steps', String(STEPS), '--seed', String(seed),
    '--zeta', String(ZETA), '--noise', `gaussian:${NOISE}`, '--json', '--out', join(tmp, `solve-${task}-${seed}.png`)));

  for (const task of ['super-resolution', 'colorize']) {
    await p.selectOption('#inv-task', task);
    if (task === 'super-resolution') await p.selectOption('#inv-factor', '2');
    await p.selectOption('#inv-source', 'file');
    await p.setInputFiles('#inv-file', png);
    await p.fill('#inv-steps', String(STEPS));
    await p.fill('#inv-seed', String(SEED));
    await p.fill('#inv-zeta', String(ZETA));
    await p.fill('#inv-noise', String(NOISE));
    await p.fill('#inv-every', '5');
    await p.evaluate(() => { document.body.dataset.inverse = ''; });
    await p.click('#inv-run');
    await p.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.inverse), null, long);
    const got = await p.evaluate(() => ({ status: document.body.dataset.inverse, error: document.body.dataset.error, ...window.scorediff.inverse }));
    const want = cliSolve(task, SEED), other = cliSolve(task, SEED + 1);
    const row = { page: got.psnr, cli: want.psnr, cliNextSeed: other.psnr, pageBaseline: got.baselinePsnr, cliBaseline: want.baseline_psnr, source: got.source };
    r[task] = row;
    const ok = got.status === 'done' && got.shape && got.shape.join('x') === '3x16x16' && got.output && got.output.length === 768;
    check(ok, `inverse ${task}: the page solves the 16x16 RGB file on the colour model (${got.error || got.source})`);
    if (!ok) continue;
    const dPsnr = Math.abs(got.psnr - want.psnr), dBase = Math.abs(got.baselinePsnr - want.baseline_psnr), dSeed = Math.abs(other.psnr - want.psnr);
    check(dPsnr < PSNR_TOLERANCE && dBase < PSNR_TOLERANCE,
      `inverse ${task}: the page's DPS is the command line's on the same PNG and seed (PSNR ${got.psnr.toFixed(4)} vs ${want.psnr.toFixed(4)} dB; ` +
      `${got.baseline} ${got.baselinePsnr.toFixed(4)} vs ${want.baseline_psnr.toFixed(4)} dB; tolerance ${PSNR_TOLERANCE})`);
    check(dSeed > PSNR_TOLERANCE, `inverse ${task}: the command line's next seed is ${dSeed.toFixed(3)} dB away, more than the tolerance`);
    // A colour result: the channels differ (a grey image would have them equal).
    let spread = 0;
    for (let i = 0; i < 256; i++) spread = Math.max(spread, Math.abs(got.output[i] - got.output[256 + i]), Math.abs(got.output[i] - got.output[512 + i]));
    check(spread > 0.1, `inverse ${task}: the result is a colour image (largest channel difference ${spread.toFixed(3)})`);
  }

  // Inpainting by hand on the colour model.
  await p.locator('#inp-canvas').scrollIntoViewIfNeeded();
  await p.click('#inp-from');
  await p.check('input[name=tool][value=erase]');
  const box = await p.locator('#inp-canvas').boundingBox();
  await p.mouse.move(box.x + 0.35 * box.width, box.y + 0.35 * box.height);
  await p.mouse.down();
  await p.mouse.move(box.x + 0.65 * box.width, box.y + 0.65 * box.height, { steps: 12 });
  await p.mouse.up();
  const canvas = await p.evaluate(() => window.scorediff.inpaintCanvas());
  const first = await p.evaluate(() => Array.from(window.scorediff.lastImages.slice(0, 768)));
  const holes = canvas.mask.filter((m) => m === 0).length;
  const copied = canvas.image.every((v, i) => v === first[i]);
  check(canvas.shape.join('x') === '3x16x16' && copied && holes > 0 && holes < 256,
    `inpainting: the canvas holds the first 3x16x16 sample in colour and the eraser made a hole of ${holes} pixels`);
  await p.setChecked('#img-x0', true); // x0-hat previews of the fill beside it
  await p.fill('#img-every', '2');
  await p.evaluate(() => { document.body.dataset.inpaint = ''; });
  await p.click('#inp-run');
  await p.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.inpaint), null, long);
  const filled = await p.evaluate(() => ({ status: document.body.dataset.inpaint, error: document.body.dataset.error, ...(window.scorediff.inpainted || {}),
    data: window.scorediff.inpainted ? Array.from(window.scorediff.inpainted.data) : null,
    x0: window.scorediff.inpainted && window.scorediff.inpainted.x0 ? window.scorediff.inpainted.x0.length : 0,
    x0Shown: !document.getElementById('inp-x0-out').hidden }));
  const okFill = filled.status === 'done' && filled.shape && filled.shape.join('x') === '4x3x16x16';
  check(okFill, `inpainting: Fill the hole returns four 3x16x16 images (${filled.error || (filled.shape || []).join('x')})`);
  check(okFill && filled.x0 === filled.data.length && filled.x0Shown,
    `inpainting: with x0-hat previews ticked, the fill's x0-hat comes with it and is drawn (${filled.x0} values, canvas ${filled.x0Shown ? 'shown' : 'hidden'})`);
  if (okFill) {
    let kept = 0, hole = 0;
    for (let b = 0; b < 4; b++) for (let k = 0; k < 3; k++) for (let i = 0; i < 256; i++) {
      const d = Math.abs(filled.data[(b * 3 + k) * 256 + i] - canvas.image[k * 256 + i]);
      if (canvas.mask[i] === 1) kept = Math.max(kept, d); else hole = Math.max(hole, d);
    }
    r.inpaint = { holes, keptMaxDiff: kept, holeMaxDiff: hole };
    check(kept < KEPT_TOLERANCE && hole > 10 * KEPT_TOLERANCE,
      `inpainting: the kept pixels are the canvas's (largest difference ${kept.toExponential(2)}) and the hole is filled anew (${hole.toFixed(3)})`);
  }
}
