// The machine a browser benchmark ran on, for its report (Node only; stats.mjs also runs in the page).
import { readFile } from 'node:fs/promises';
import { cpus } from 'node:os';

export async function machine(chromiumVersion) {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  return { nproc: cpus().length, cpu: (cpuinfo.match(/model name\s*:\s*(.*)/) || [])[1] || cpus()[0]?.model, chromium: chromiumVersion };
}
