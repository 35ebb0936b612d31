// One of our workers in the browser side-by-side: its own wasm instance and its own copy of the
// weights (www/pkg, built by ./run.sh --no-serve, or the build named by ?pkg=/dir/), timing
// nothing itself; the page times a round of all its workers. Messages in: {type: 'load', device,
// card, weights} | {type: 'eval', batch, t}; out: {ok: true, ...} or {ok: false, error}.
const pkg = new URLSearchParams(self.location.search).get('pkg') || '/www/pkg/';
if (!/^\/[\w\-/.]+\/$/.test(pkg) || pkg.includes('..')) throw new Error(`pkg: expected a served directory like /www/pkg/, found ${pkg}`);
// Imported inside the handler: a message that arrives while a top-level await is pending finds
// no handler and is lost.
const loading = import(pkg + 'scorediff_web.js');
let wasm = null;
let model = null;

self.onmessage = async ({ data }) => {
  try {
    if (data.type === 'load') {
      wasm = await loading;
      await wasm.default();
      if (typeof wasm.BenchModel !== 'function') throw new Error('www/pkg has no BenchModel: rebuild it with ./run.sh --no-serve');
      model = await wasm.BenchModel.load(data.device, data.card, new Uint8Array(data.weights));
      self.postMessage({ ok: true, backend: model.backend, parameters: model.parameters });
    } else if (data.type === 'eval') {
      if (!model) throw new Error('no model loaded');
      const out = await model.evaluate(data.batch, data.t);
      let finite = true;
      for (let i = 0; i < out.length; i += 97) if (!Number.isFinite(out[i])) finite = false;
      self.postMessage({ ok: true, values: out.length, finite });
    } else {
      throw new Error(`unknown message ${data.type}`);
    }
  } catch (e) {
    let message = e && e.message ? e.message : String(e);
    if (e instanceof WebAssembly.RuntimeError && wasm && wasm.lastPanic) message += ': ' + wasm.lastPanic();
    self.postMessage({ ok: false, error: message });
  }
};
