// A pool of module workers (worker.js), each with its own WebAssembly instance and its own copy
// of the weights: Flex in wasm is single-threaded (stable Rust builds no shared-memory wasm), so
// sampling on every core means one instance per core. Worker 0 serves everything (the 2-D lab,
// classifiers, ...); a batched image run (sampling, interpolation, inpainting) is split into
// contiguous slices, one per worker, each request carrying `first`: image i of a slice is image
// first + i of the seed's run, with that image's own noise, so the pool draws exactly what one
// worker would. With WebGPU the pool is one worker (one GPU device, one copy of the weights).
//
//   const pool = new Pool({ onError });
//   const ready = await pool.start(prefer, size);   // worker 0's init result
//   pool.call(type, payload, onProgress);           // worker 0
//   await pool.batched(type, { name, request, ... }, total, onProgress);

// The most workers the page offers: beyond 8, the copies of the weights and the instances'
// memory cost more than a browser tab should take for a few more cores.
export const MAX_WORKERS = 8;

export function defaultWorkers() {
  const cores = (typeof navigator !== 'undefined' && navigator.hardwareConcurrency) || 1;
  return Math.max(1, Math.min(MAX_WORKERS, cores));
}

// `total` items split into at most `parts` contiguous slices [start, start + count), in order,
// sizes differing by at most one, none empty.
export function slices(total, parts) {
  const n = Math.max(1, Math.min(parts, total));
  const out = [];
  let start = 0;
  for (let k = 0; k < n; k++) {
    const count = Math.floor(total / n) + (k < total % n ? 1 : 0);
    out.push({ start, count });
    start += count;
  }
  return out;
}

// The message of a wasm instance that has stopped for good (worker.js's describe()).
const DEAD = /the WebAssembly module stopped/;

// One module worker and its requests in flight.
class Client {
  constructor(index, url, onError) {
    this.index = index;
    this.pending = new Map();
    this.nextId = 1;
    this.loaded = new Map(); // model name -> promise of its info
    this.dead = false;
    this.worker = new Worker(url, { type: 'module' });
    this.worker.onmessage = (event) => {
      const msg = event.data;
      const p = this.pending.get(msg.id);
      if (!p) return;
      if (msg.type === 'progress') p.onProgress && p.onProgress(msg);
      else {
        this.pending.delete(msg.id);
        if (msg.type === 'error') {
          if (DEAD.test(msg.message)) this.dead = true;
          p.reject(new Error(msg.message));
        } else p.resolve(msg.result);
      }
    };
    this.worker.onerror = (e) => {
      this.dead = true;
      const message = `worker ${index + 1} failed: ${e.message || 'see the console'} ` +
        '(was the page opened through a web server after ./run.sh built pkg/?)';
      this.fail(message);
      onError(message);
    };
  }

  // `carry`: whether a restart of the pool sends the request again to the new worker 0 (plain
  // requests) or fails it (the slices of a batched run).
  call(type, payload = {}, onProgress = null, carry = true) {
    if (this.dead) return Promise.reject(new Error(`worker ${this.index + 1} has stopped`));
    return new Promise((resolve, reject) => this.send({ type, payload, onProgress, carry, resolve, reject }));
  }

  send(request) {
    const id = this.nextId++;
    this.pending.set(id, request);
    this.worker.postMessage({ id, type: request.type, ...request.payload });
  }

  // The requests in flight that a restart carries over, taken out of this worker.
  takeCarried() {
    const carried = [...this.pending.entries()].filter(([, r]) => r.carry);
    for (const [id] of carried) this.pending.delete(id);
    return carried.map(([, r]) => r);
  }

  // The image model `name` loaded in this worker (once; a failed load is retried next time).
  ensure(name) {
    if (!this.loaded.has(name)) {
      const p = this.call('load-image', { name });
      this.loaded.set(name, p);
      p.catch(() => this.loaded.get(name) === p && this.loaded.delete(name));
    }
    return this.loaded.get(name);
  }

  fail(message) {
    for (const p of this.pending.values()) p.reject(new Error(message));
    this.pending.clear();
  }

  terminate() {
    this.worker.terminate();
    this.dead = true;
    this.fail(`worker ${this.index + 1} was stopped`);
  }
}

export class Pool {
  constructor({ url = 'worker.js', onError = () => {} } = {}) {
    this.url = url;
    this.onError = onError;
    this.clients = [];
    this.prefer = 'auto';
    this.backend = null;
    this.ready = null;
    this.starting = null; // a start in progress: requests wait for it
  }

  get size() {
    return this.clients.length;
  }

  // (Re)starts the pool on `prefer` with `size` workers (one on WebGPU); resolves to worker 0's
  // init result.
  // Requests in flight on the old worker 0 (the lab's, a model's load) are sent again to the
  // new one once it is up, so a change of device does not fail them; the slices of a batched run
  // fail ("was stopped").
  async start(prefer, size) {
    const carried = this.clients.length ? this.clients[0].takeCarried() : [];
    for (const c of this.clients) c.terminate();
    this.clients = [];
    this.prefer = prefer;
    const first = new Client(0, this.url, this.onError);
    this.clients.push(first);
    const starting = (async () => {
      this.ready = await first.call('init', { prefer }, null, false);
      this.backend = this.ready.backend;
      await this.resize(size);
    })();
    this.starting = starting;
    try {
      await starting;
    } catch (e) {
      for (const r of carried) r.reject(e);
      throw e;
    } finally {
      if (this.starting === starting) this.starting = null;
    }
    for (const r of carried) first.send(r);
    return this.ready;
  }

  // Waits for a start in progress.
  async settled() {
    while (this.starting) await this.starting.catch(() => {});
  }

  // Grows or shrinks the pool to `size` workers (1 to MAX_WORKERS; 1 on WebGPU). New workers
  // run Flex, as worker 0 does whenever there are others.
  async resize(size) {
    const want = this.backend === 'webgpu' ? 1 : Math.max(1, Math.min(MAX_WORKERS, Math.floor(+size) || 1));
    while (this.clients.length > want) this.clients.pop().terminate();
    const fresh = [];
    while (this.clients.length < want) {
      const c = new Client(this.clients.length, this.url, this.onError);
      this.clients.push(c);
      fresh.push(c.call('init', { prefer: 'flex' }, null, false));
    }
    await Promise.all(fresh);
    return want;
  }

  // A worker whose instance stopped (a wasm trap, a failed start) is replaced by a fresh one, so
  // one failure does not wedge the pool.
  async heal() {
    for (let k = 0; k < this.clients.length; k++) {
      if (!this.clients[k].dead) continue;
      this.clients[k].terminate();
      const c = new Client(k, this.url, this.onError);
      this.clients[k] = c;
      await c.call('init', { prefer: k === 0 ? this.prefer : 'flex' }, null, false);
    }
  }

  async call(type, payload, onProgress) {
    await this.settled();
    return this.clients[0].call(type, payload, onProgress);
  }

  post(msg) {
    this.clients[0].worker.postMessage(msg);
  }

  stop() {
    for (const c of this.clients) if (!c.dead) c.worker.postMessage({ type: 'stop' });
  }

  // The image model `name` in every worker; resolves to worker 0's info.
  async loadImage(name) {
    await this.settled();
    await this.heal();
    const infos = await Promise.all(this.clients.map((c) => c.ensure(name)));
    return infos[0];
  }

  // A batched image run of `total` images split over the workers. `part(start, count)` gives the
  // payload of one slice (its request carrying `first`); worker 0 first checks the whole request
  // (`check`: its batch is `total`), so a batch of 0 or over the limit is refused as one run would
  // refuse it. `onProgress` gets the slices merged: data (and x0, when previews are on) of all
  // `total` images, k = the fewest steps any slice has taken, the sampler's NFE per image, the
  // previews' evaluations apart, and final once every slice has posted its last state.
  // Resolves to { stopped, k, n, nfe, previewNfe, ms, images, imagesPerSecond, workers }; an error
  // of any worker rejects it (after the others are stopped and have answered).
  async batched(type, { name, check, part }, total, onProgress) {
    await this.loadImage(name);
    await this.call('check-request', { request: check });
    const parts = slices(total, this.clients.length);
    const started = performance.now();
    const views = parts.map(() => null);
    let merged = null, mergedX0 = null;
    const emit = () => {
      if (views.some((v) => v === null)) return; // every slice's first state, then merged
      const [, c, h, w] = views[0].shape;
      const per = c * h * w;
      if (!merged) merged = new Float32Array(total * per);
      const withX0 = views.every((v) => v.x0);
      if (withX0 && !mergedX0) mergedX0 = new Float32Array(total * per);
      parts.forEach((p, i) => {
        merged.set(views[i].data, p.start * per);
        if (withX0) mergedX0.set(views[i].x0, p.start * per);
      });
      const m = views.reduce((a, v) => (v.k < a.k ? v : a));
      onProgress({
        k: m.k, n: m.n, nfe: m.nfe, previewNfe: Math.max(...views.map((v) => v.previewNfe || 0)),
        msPerStep: Math.max(...views.map((v) => v.msPerStep)), backend: views[0].backend,
        shape: [total, c, h, w], data: merged.slice(), x0: withX0 ? mergedX0.slice() : null,
        final: views.every((v) => v.final), workers: parts.length,
      });
    };
    const runs = parts.map((p, i) => this.clients[i].call(type, { name, ...part(p.start, p.count) }, (m) => {
      views[i] = m;
      emit();
    }, false).catch((e) => {
      this.stop();
      throw parts.length > 1 ? new Error(`worker ${i + 1} of ${parts.length}: ${e.message}`) : e;
    }));
    const settled = await Promise.allSettled(runs);
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) {
      this.heal().catch((e) => this.onError(e.message));
      throw failed.reason;
    }
    const results = settled.map((s) => s.value);
    const ms = performance.now() - started;
    const stopped = results.some((r) => r.stopped);
    return {
      stopped, k: Math.min(...results.map((r) => r.k)), n: results[0].n, nfe: results[0].nfe,
      previewNfe: Math.max(...results.map((r) => r.previewNfe || 0)), ms, images: total,
      imagesPerSecond: stopped ? null : total / (ms / 1000), workers: parts.length, backend: results[0].backend,
    };
  }
}
