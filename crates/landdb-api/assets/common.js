// landdb — code shared by the map (/map) and upload (/upload) pages.
// Plain script, no build step: it defines one global, `landdb`.
'use strict';

const landdb = (() => {
  const KEY_STORAGE = 'landdb.key';

  // The API key lives in localStorage so both pages share it.
  function getKey() {
    try {
      return localStorage.getItem(KEY_STORAGE) || '';
    } catch {
      return ''; // storage disabled (privacy mode): work without a key
    }
  }

  function setKey(key) {
    try {
      if (key) localStorage.setItem(KEY_STORAGE, key);
      else localStorage.removeItem(KEY_STORAGE);
    } catch {
      /* ignore: the key then lasts only for this page */
    }
  }

  // A key handed over in the address (#key=…, as `landdb demo --serve` prints it) is kept and
  // taken out of the address, so it is neither bookmarked nor shared with a link.
  const handedOver = /^#key=([A-Za-z0-9_]+)$/.exec(location.hash);
  if (handedOver) {
    setKey(handedOver[1]);
    history.replaceState(null, '', location.pathname + location.search);
  }

  // Headers for a request to landdb: Authorization only when a key is set.
  function authHeaders(extra = {}) {
    const key = getKey();
    return key ? { ...extra, Authorization: `Bearer ${key}` } : { ...extra };
  }

  // Turn an error response into a readable message. landdb answers errors
  // as JSON {"code": "...", "description": "..."}.
  async function errorText(resp) {
    let text = `${resp.status} ${resp.statusText}`;
    try {
      const body = await resp.json();
      if (body && body.description) text = body.description + (body.code ? ` [${body.code}]` : '');
    } catch {
      /* not JSON: keep the status line */
    }
    if (resp.status === 401 || resp.status === 403) {
      text += ' — Kiểm tra khóa API (check the API key)';
    }
    return text;
  }

  // GET a JSON document with the key; throws an Error with a readable message.
  async function fetchJson(url) {
    const resp = await fetch(url, { headers: authHeaders({ Accept: 'application/json' }) });
    if (!resp.ok) throw new Error(await errorText(resp));
    return resp.json();
  }

  // Save a URL as a file. With a key the browser cannot add the header to a
  // plain link, so fetch it, wrap it in a blob and click an object URL.
  async function download(url, filename) {
    const resp = await fetch(url, { headers: authHeaders() });
    if (!resp.ok) throw new Error(await errorText(resp));
    const blobUrl = URL.createObjectURL(await resp.blob());
    const a = document.createElement('a');
    a.href = blobUrl;
    a.download = filename;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(blobUrl), 60_000);
  }

  // Wire the header's <input id="api-key">: show the stored key, save edits,
  // and call onChange(key) after each change.
  function setupKeyInput(onChange) {
    const input = document.getElementById('api-key');
    if (!input) return;
    input.value = getKey();
    input.addEventListener('change', () => {
      const key = input.value.trim();
      input.value = key;
      setKey(key);
      if (onChange) onChange(key);
    });
  }

  // Text for a table cell: objects and arrays as JSON, absent values as "—".
  function cellText(value) {
    if (value === null || value === undefined || value === '') return '—';
    if (typeof value === 'object') return JSON.stringify(value);
    return String(value);
  }

  return { getKey, setKey, authHeaders, errorText, fetchJson, download, setupKeyInput, cellText };
})();
