// landdb parcel map (/map): vector tiles of the `parcels` collection drawn by
// MapLibre GL JS, with no base map and no text labels (so no glyph server).
'use strict';

(async () => {
  const TILES = `${location.origin}/collections/parcels/tiles/WebMercatorQuad/{z}/{y}/{x}`; // OGC order z/y/x
  const MIN_ZOOM = 13; // the server has parcel tiles from this zoom on
  const NONE = -1; // highlight filter value that matches no parcel

  // Fill colour by land-use code (Vietnamese cadastral codes).
  const LAND_USE_COLOURS = [
    ['ODT', '#f28e2b', 'Đất ở đô thị (urban residential)'],
    ['ONT', '#f6b26b', 'Đất ở nông thôn (rural residential)'],
    ['LUC', '#7cb342', 'Đất chuyên trồng lúa (rice)'],
    ['LUK', '#9ccc65', 'Đất trồng lúa còn lại (other rice)'],
    ['BHK', '#c5e1a5', 'Đất trồng cây hằng năm khác (annual crops)'],
    ['CLN', '#558b2f', 'Đất trồng cây lâu năm (perennial crops)'],
    ['SKC', '#8e63c7', 'Đất cơ sở sản xuất phi nông nghiệp (non-farm production)'],
    ['TMD', '#b39ddb', 'Đất thương mại, dịch vụ (commercial, services)'],
    ['DGT', '#9e9e9e', 'Đất giao thông (roads)'],
  ];
  const DEFAULT_COLOUR = '#d8d2c4';
  const fillColour = ['match', ['to-string', ['get', 'land_use']],
    ...LAND_USE_COLOURS.flatMap(([code, colour]) => [code, colour]),
    DEFAULT_COLOUR];

  // Vietnamese labels for the usual parcel properties; others show their key.
  const LABELS = {
    commune: 'Mã xã (commune)',
    sheet: 'Tờ bản đồ (map sheet)',
    number: 'Số thửa (parcel number)',
    land_use: 'Mục đích sử dụng (land use)',
    area_m2: 'Diện tích m² (area)',
    address: 'Địa chỉ (address)',
    national_id: 'Mã thửa quốc gia (national id)',
  };

  const style = {
    version: 8,
    sources: {
      parcels: { type: 'vector', tiles: [TILES], minzoom: MIN_ZOOM, maxzoom: 18 },
    },
    layers: [
      { id: 'background', type: 'background', paint: { 'background-color': '#f4f1ea' } },
      {
        id: 'parcels-fill', type: 'fill', source: 'parcels', 'source-layer': 'parcels',
        paint: { 'fill-color': fillColour, 'fill-opacity': 0.7 },
      },
      {
        id: 'parcels-line', type: 'line', source: 'parcels', 'source-layer': 'parcels',
        paint: {
          'line-color': '#6b5b4b',
          'line-width': ['interpolate', ['linear'], ['zoom'], 13, 0.3, 18, 1.5],
        },
      },
      // The clicked parcel: same source, filtered by its `id`.
      {
        id: 'highlight-fill', type: 'fill', source: 'parcels', 'source-layer': 'parcels',
        filter: ['==', ['get', 'id'], NONE],
        paint: { 'fill-color': '#ffeb3b', 'fill-opacity': 0.6 },
      },
      {
        id: 'highlight-line', type: 'line', source: 'parcels', 'source-layer': 'parcels',
        filter: ['==', ['get', 'id'], NONE],
        paint: { 'line-color': '#d62728', 'line-width': 3 },
      },
    ],
  };

  const info = document.getElementById('parcel-info');
  const hint = document.getElementById('zoom-hint');

  // Where to start: the extent of the parcels the key sees (the collection's extent is the
  // caller's scope), or null when it sees none (the extent is then the whole world).
  async function extentBounds() {
    const collection = await landdb.fetchJson('/collections/parcels');
    const b = collection?.extent?.spatial?.bbox?.[0];
    if (!Array.isArray(b) || b.length < 4 || (b[0] <= -180 && b[2] >= 180)) return null;
    return [[b[0], b[1]], [b[2], b[3]]];
  }

  // The view that fits `bounds`, kept clear of the map's edges and controls.
  const FIT = { padding: 40, maxZoom: 18 };

  function showMessage(text, cls = 'error') {
    info.replaceChildren(Object.assign(document.createElement('p'), { className: cls, textContent: text }));
  }

  // Find the starting view before creating the map, so no tiles are fetched
  // for a view we are about to leave. A URL hash (#zoom/lat/lon) wins.
  const startedWithHash = Boolean(location.hash);
  let bounds = null;
  if (!startedWithHash) {
    try {
      bounds = await extentBounds();
    } catch (err) {
      showMessage(`Không đọc được phạm vi dữ liệu (could not read the data extent): ${err.message}`);
    }
  }

  // The communes in view, outlined by the parcels the key sees (served by landdb, no internet
  // needed): a background that shows where the data lie, under the parcels, which appear from
  // MIN_ZOOM on. Asked for the view once it is a few communes wide (OUTLINE_ZOOM), not for a
  // whole country's.
  const OUTLINE_ZOOM = 10;
  const EMPTY = { type: 'FeatureCollection', features: [] };
  style.sources.communes = { type: 'geojson', data: EMPTY };
  style.layers.splice(1, 0,
    {
      id: 'communes-fill', type: 'fill', source: 'communes', maxzoom: MIN_ZOOM,
      paint: { 'fill-color': '#5e35b1', 'fill-opacity': 0.08 },
    },
    {
      id: 'communes-line', type: 'line', source: 'communes',
      paint: { 'line-color': '#5e35b1', 'line-width': 1.5, 'line-dasharray': [3, 2] },
    });

  const map = new maplibregl.Map({
    container: 'map',
    style,
    // Fitted to the data in the key's scope; all of Viet Nam without one.
    ...(bounds ? { bounds, fitBoundsOptions: FIT } : { center: [106.0, 16.0], zoom: 5 }),
    hash: true,
    // Send the key with every same-origin request MapLibre makes (the tiles).
    transformRequest: (url) =>
      url.startsWith(location.origin) ? { url, headers: landdb.authHeaders() } : { url },
  });
  window.landdbMap = map;
  // The canvas follows its box (the layout changes with the screen and the panel).
  new ResizeObserver(() => map.resize()).observe(document.getElementById('map'));
  map.addControl(new maplibregl.NavigationControl(), 'top-left');
  map.addControl(new maplibregl.ScaleControl({ unit: 'metric' }), 'bottom-left');

  // `idle` fires only once the style and all visible tiles have loaded (or
  // failed): the browser test waits for this flag.
  map.once('idle', () => { document.body.dataset.mapReady = '1'; });

  let outlined = null; // the box whose outlines are shown
  const outlineView = () => {
    const source = map.getSource('communes');
    if (!source) return;
    if (map.getZoom() < OUTLINE_ZOOM) {
      if (outlined !== null) { source.setData(EMPTY); outlined = null; }
      return;
    }
    const b = map.getBounds();
    const box = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(5)).join(',');
    if (box === outlined) return;
    outlined = box;
    source.setData(`${location.origin}/collections/communes/items?limit=10000&bbox=${box}`);
  };
  map.on('load', outlineView);
  map.on('moveend', outlineView);

  // "Zoom in" hint below the tiles' minimum zoom.
  const updateHint = () => { hint.hidden = map.getZoom() >= MIN_ZOOM; };
  map.on('zoom', updateHint);
  updateHint();

  // Click a parcel: highlight it and show all its properties.
  map.on('mouseenter', 'parcels-fill', () => { map.getCanvas().style.cursor = 'pointer'; });
  map.on('mouseleave', 'parcels-fill', () => { map.getCanvas().style.cursor = ''; });
  map.on('click', 'parcels-fill', (e) => {
    const id = e.features?.[0]?.properties?.id;
    if (id !== undefined) showParcel(id);
  });

  async function showParcel(id) {
    const filter = ['==', ['get', 'id'], id];
    map.setFilter('highlight-fill', filter);
    map.setFilter('highlight-line', filter);
    showMessage('Đang tải… (loading)', 'muted');
    try {
      const feature = await landdb.fetchJson(`/collections/parcels/items/${encodeURIComponent(id)}`);
      renderParcel(feature);
    } catch (err) {
      showMessage(`Không tải được thửa đất (could not load the parcel): ${err.message}`);
    }
  }

  function renderParcel(feature) {
    const p = feature.properties || {};
    const title = document.createElement('h2');
    title.textContent = `Thửa ${p.number ?? '?'}, tờ ${p.sheet ?? '?'} (parcel ${p.number ?? '?'}, sheet ${p.sheet ?? '?'})`;

    const table = document.createElement('table');
    table.className = 'props';
    const rows = Object.entries(p);
    if (feature.id !== undefined && feature.id !== p.id) rows.unshift(['id', feature.id]);
    for (const [key, value] of rows) {
      const tr = table.insertRow();
      const th = document.createElement('th');
      th.textContent = LABELS[key] || key;
      th.title = key;
      tr.append(th);
      tr.insertCell().textContent = landdb.cellText(value);
    }
    info.replaceChildren(title, table);
  }

  // Search: a natural key (commune/sheet/number), a national ID, a point in WGS84 (lon,lat) or
  // in a VN-2000 zone (x y EPSG:code), or address text (agencies granted personal data). The
  // first parcel found is flown to, highlighted and shown.
  function searchUrl(text) {
    const t = text.trim();
    const key = /^(\d{5})\/([^/]+)\/([^/]+)$/.exec(t);
    if (key) return `/parcels/key/${key.slice(1).map(encodeURIComponent).join('/')}`;
    if (/^[0-9a-z]{12}$/i.test(t)) return `/parcels/national-id/${t.toLowerCase()}`;
    const numbers = /^(-?\d+(?:\.\d+)?)[\s,;]+(-?\d+(?:\.\d+)?)(?:[\s,;]+(?:EPSG:)?(\d{4,5}))?$/i.exec(t);
    if (numbers) {
      const [a, b, zone] = [Number(numbers[1]), Number(numbers[2]), numbers[3]];
      if (zone) return `/parcels/at?x=${a}&y=${b}&point-crs=EPSG:${zone}`;
      // Longitude first, as GeoJSON; a latitude-first pair in Viet Nam is told by its size.
      const [lon, lat] = Math.abs(a) <= 90 && Math.abs(b) > 90 ? [b, a] : [a, b];
      if (Math.abs(lon) <= 180 && Math.abs(lat) <= 90) return `/parcels/at?lon=${lon}&lat=${lat}`;
      return null; // metres without a zone: which of the TM-3 zones is not known
    }
    const like = `%${t.replace(/'/g, "''")}%`;
    return `/collections/parcels/items?limit=1&filter=${encodeURIComponent(`casei(address) LIKE casei('${like}')`)}`;
  }

  // The box around a GeoJSON geometry's coordinates.
  function boundsOf(geometry) {
    let [w, s, e, n] = [Infinity, Infinity, -Infinity, -Infinity];
    const visit = (c) => {
      if (typeof c[0] === 'number') {
        [w, s, e, n] = [Math.min(w, c[0]), Math.min(s, c[1]), Math.max(e, c[0]), Math.max(n, c[1])];
      } else c.forEach(visit);
    };
    visit(geometry.coordinates);
    return [[w, s], [e, n]];
  }

  document.getElementById('search').addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = document.getElementById('search-text').value;
    const url = searchUrl(text);
    delete document.body.dataset.searchDone;
    if (!url) {
      showMessage('Tọa độ mét cần mã vùng, ví dụ "544763 1771845 EPSG:5899" (metres need their zone).');
      return;
    }
    try {
      const found = await landdb.fetchJson(url);
      const feature = found.type === 'FeatureCollection' ? found.features?.[0] : found;
      if (!feature) {
        showMessage(`Không tìm thấy thửa đất (no parcel found): ${text}`, 'muted');
        return;
      }
      const filter = ['==', ['get', 'id'], feature.id];
      map.setFilter('highlight-fill', filter);
      map.setFilter('highlight-line', filter);
      renderParcel(feature);
      map.fitBounds(boundsOf(feature.geometry), { ...FIT, animate: false });
      map.once('idle', () => { document.body.dataset.searchDone = String(feature.id); });
    } catch (err) {
      showMessage(`Tìm không được (search failed): ${err.message}`);
    }
  });

  // Legend from the same colour table.
  const legend = document.getElementById('legend');
  for (const [code, colour, label] of [...LAND_USE_COLOURS, ['…', DEFAULT_COLOUR, 'Khác (other)']]) {
    const row = document.createElement('div');
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.background = colour;
    row.append(swatch, `${code} — ${label}`);
    legend.append(row);
  }

  // A new key: refetch the tiles with it (setTiles reloads the source), and
  // fit the view to the data if that failed before for want of a key.
  landdb.setupKeyInput(async () => {
    map.getSource('parcels')?.setTiles([TILES]);
    if (!bounds && !startedWithHash) {
      try {
        bounds = await extentBounds();
        if (bounds) {
          map.fitBounds(bounds, { ...FIT, animate: false });
          showMessage('Nhấp vào một thửa đất để xem thông tin (click a parcel to see its details).', 'muted');
        }
      } catch (err) {
        showMessage(`Không đọc được phạm vi dữ liệu (could not read the data extent): ${err.message}`);
      }
    }
  });
})();
