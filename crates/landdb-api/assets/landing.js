// landdb — the landing page (/): what the store holds for the caller's key, with links to each
// collection (as HTML pages), the map and the upload page. The page itself is public; the
// figures come from /collections with the key the browser keeps, so they are the caller's scope.
'use strict';

(() => {
  const holdings = document.getElementById('holdings');
  const status = document.getElementById('holdings-status');

  function link(href, text) {
    const a = document.createElement('a');
    a.href = href;
    a.textContent = text;
    return a;
  }

  // numberMatched of a collection's items, over the caller's scope (one feature fetched).
  async function count(items) {
    const page = await landdb.fetchJson(`${items}?limit=1`);
    return page.numberMatched;
  }

  async function show() {
    holdings.replaceChildren();
    if (!landdb.getKey()) {
      status.textContent = 'Nhập khóa API để xem dữ liệu (enter an API key to see what the store holds for it).';
      return;
    }
    status.textContent = 'Đang tải… (loading)';
    try {
      const doc = await landdb.fetchJson('/collections');
      for (const c of doc.collections) {
        const items = (c.links.find((l) => l.rel === 'items') || {}).href;
        const card = document.createElement('article');
        card.className = 'holding';
        card.dataset.collection = c.id;
        const title = document.createElement('h3');
        title.textContent = c.title;
        const figure = document.createElement('p');
        figure.className = 'figure';
        const n = items ? await count(items) : undefined;
        figure.textContent = n === undefined ? '—' : `${n.toLocaleString('vi-VN')} `;
        figure.append(c.id === 'parcels' ? 'thửa đất (parcels)' : 'mục (features)');
        const about = document.createElement('p');
        about.className = 'muted';
        about.textContent = c.description;
        const nav = document.createElement('nav');
        if (items) nav.append(link(`${items}?f=html`, 'Xem (browse)'));
        nav.append(link(`/collections/${c.id}/queryables`, 'Queryables'));
        if (c.id === 'parcels') nav.append(link('/map', 'Bản đồ (map)'));
        card.append(title, figure, about, nav);
        holdings.append(card);
      }
      status.textContent = '';
      holdings.dataset.ready = 'true';
    } catch (e) {
      status.textContent = e.message;
      status.classList.add('error');
    }
  }

  landdb.setupKeyInput(show);
  show();
})();
