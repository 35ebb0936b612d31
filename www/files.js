// How the worker fetches model files and what it keeps with the Cache API (where it exists:
// secure contexts such as localhost).
//
// - Cards and other small JSON files (model.json, classifier.json, mixtures) come from the
//   network on every visit, revalidated with the server (`cache: 'no-cache'`), so a re-exported
//   card is seen at once; the Cache API copy serves only when the network fails (offline).
// - Weights are named by their content, the card's `weights_sha256`: fetched as
//   `URL?sha256=HASH` (so no HTTP cache hands back another version either) and kept under that
//   key once the bytes hash to it. A card with a new hash therefore fetches the new weights, and
//   the entries of the same file under other keys (older hashes, or the bare URL that earlier
//   versions of the page used) are dropped. Weights of a card without a hash are fetched like a
//   card.
// Dependencies come in as arguments so that tests/e2e/files.test.mjs can run this under node.

export const CACHE = 'scorediff-models-v1';

function missing(url, response) {
  return new Error(`${url}: ${response.status} ${response.statusText} — the model's files are missing ` +
    '(export them with `native-cli export` into www/models/, see the README)');
}

async function sha256Hex(subtle, bytes) {
  const digest = new Uint8Array(await subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

// caches: a CacheStorage or null; fetch: the fetch function; base: the URL relative paths are
// resolved against; subtle: a SubtleCrypto (without one, weights are not cached).
export function modelFiles({ caches, fetch, base, subtle }) {
  const open = async () => (caches ? caches.open(CACHE).catch(() => null) : null);

  // The file's response, from the network (revalidated) or, offline, from the cache.
  async function fresh(url) {
    const cache = await open();
    let response;
    try {
      response = await fetch(url, { cache: 'no-cache' });
    } catch (e) {
      const kept = cache && (await cache.match(url));
      if (kept) return kept;
      throw new Error(`${url}: ${e.message || e}`);
    }
    if (!response.ok) throw missing(url, response);
    if (cache) await cache.put(url, response.clone()).catch(() => {});
    return response;
  }

  // The text of a card or other small file.
  async function text(url) {
    return (await fresh(url)).text();
  }

  // The bytes of a weights file whose SHA-256 the card gives (`sha256`; null or undefined: none).
  async function bytes(url, sha256) {
    if (!sha256) return new Uint8Array(await (await fresh(url)).arrayBuffer());
    const key = `${url}?sha256=${sha256}`;
    const cache = await open();
    const kept = cache && (await cache.match(key));
    if (kept) return new Uint8Array(await kept.arrayBuffer());
    const response = await fetch(key);
    if (!response.ok) throw missing(url, response);
    const data = new Uint8Array(await response.arrayBuffer());
    // Only bytes that are what the key says are kept: a card and weights from different
    // exports are reported by the loader (which checks the hash too) and fetched again next time.
    if (cache && subtle && (await sha256Hex(subtle, data)) === sha256) {
      await cache.put(key, new Response(data, { headers: response.headers })).catch(() => {});
      const target = new URL(key, base);
      for (const request of await cache.keys()) {
        const other = new URL(request.url);
        if (other.origin === target.origin && other.pathname === target.pathname && other.href !== target.href) {
          await cache.delete(request).catch(() => {});
        }
      }
    }
    return data;
  }

  return { text, bytes };
}
