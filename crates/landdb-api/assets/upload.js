// landdb upload page (/upload): send a file as a job (POST /jobs, multipart
// fields `file` and `mode`), then poll GET /jobs/{id} every 500 ms and show
// its progress, verdict counts, changes, reason codes and download links.
'use strict';

(() => {
  const POLL_MS = 500;
  const MAX_POLL_ERRORS = 10; // consecutive failed polls before giving up

  const $ = (id) => document.getElementById(id);
  const form = $('upload-form');
  const dropZone = $('drop-zone');
  const fileInput = $('file');
  const submit = $('submit');
  const status = $('upload-status');

  const VERDICTS = [
    ['input', 'Bản ghi đầu vào (input records)'],
    ['accepted', 'Chấp nhận (accepted)'],
    ['accepted_with_warnings', 'Chấp nhận có cảnh báo (accepted with warnings)'],
    ['repaired', 'Đã sửa (repaired)'],
    ['rejected', 'Từ chối (rejected)'],
  ];
  const CHANGES = [
    ['inserted', 'Thêm mới (inserted)'],
    ['updated', 'Cập nhật (updated)'],
    ['unchanged', 'Không đổi (unchanged)'],
    ['retired', 'Ngừng hiệu lực (retired)'],
    ['quarantined', 'Cách ly (quarantined)'],
  ];

  let file = null;
  let busy = false;

  landdb.setupKeyInput();

  // --- choosing a file: click, keyboard, or drag and drop ---------------
  function chooseFile(f) {
    file = f || null;
    $('file-name').textContent = file ? `${file.name} (${formatBytes(file.size)})` : '';
    submit.disabled = !file || busy;
  }

  dropZone.addEventListener('click', () => fileInput.click());
  dropZone.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); fileInput.click(); }
  });
  fileInput.addEventListener('change', () => chooseFile(fileInput.files[0]));
  for (const type of ['dragenter', 'dragover']) {
    dropZone.addEventListener(type, (e) => { e.preventDefault(); dropZone.classList.add('over'); });
  }
  dropZone.addEventListener('dragleave', () => dropZone.classList.remove('over'));
  dropZone.addEventListener('drop', (e) => {
    e.preventDefault();
    dropZone.classList.remove('over');
    chooseFile(e.dataTransfer.files[0]);
  });

  // --- submitting ------------------------------------------------------
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!file || busy) return;
    setBusy(true);
    $('job').hidden = true;
    const body = new FormData();
    body.append('file', file, file.name);
    body.append('mode', $('mode').value);
    try {
      const job = await postJob(body);
      status.textContent = '';
      const statusLink = (job.links || []).find((l) => l.rel === 'status');
      await poll(job.id, statusLink ? statusLink.href : `/jobs/${encodeURIComponent(job.id)}`);
    } catch (err) {
      status.className = 'error';
      status.textContent = `Lỗi (error): ${err.message}`;
    } finally {
      setBusy(false);
    }
  });

  function setBusy(value) {
    busy = value;
    submit.disabled = !file || busy;
  }

  // XMLHttpRequest rather than fetch, for upload progress on large files.
  function postJob(body) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', '/jobs');
      for (const [name, value] of Object.entries(landdb.authHeaders({ Accept: 'application/json' }))) {
        xhr.setRequestHeader(name, value);
      }
      xhr.upload.onprogress = (e) => {
        status.className = 'muted';
        status.textContent = e.lengthComputable
          ? `Đang tải lên ${Math.round((100 * e.loaded) / e.total)}% (uploading)`
          : `Đang tải lên ${formatBytes(e.loaded)} (uploading)`;
      };
      xhr.onerror = () => reject(new Error('Không kết nối được máy chủ (network error)'));
      xhr.onload = () => {
        let json = null;
        try { json = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
        if (xhr.status >= 200 && xhr.status < 300 && json && json.id) {
          resolve(json);
        } else {
          let msg = json && json.description
            ? json.description + (json.code ? ` [${json.code}]` : '')
            : `${xhr.status} ${xhr.statusText}`;
          if (xhr.status === 401 || xhr.status === 403) msg += ' — Kiểm tra khóa API (check the API key)';
          reject(new Error(msg));
        }
      };
      xhr.send(body);
    });
  }

  // --- following the job -------------------------------------------------
  async function poll(id, url) {
    let errors = 0;
    for (;;) {
      try {
        const job = await landdb.fetchJson(url);
        errors = 0;
        render(job);
        if (job.state === 'succeeded' || job.state === 'failed') return;
      } catch (err) {
        if (++errors >= MAX_POLL_ERRORS) throw err;
        status.className = 'error';
        status.textContent = `Lỗi khi hỏi trạng thái, thử lại… (status error, retrying): ${err.message}`;
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  // Draw the whole job in one go, so the state never shows ahead of its counts.
  function render(job) {
    const finished = job.state === 'succeeded' || job.state === 'failed';
    $('job').hidden = false;
    $('job-id').textContent = job.id;
    $('job-file').textContent = job.file || '';
    $('job-progress').textContent = `Đã đọc ${job.records_read ?? 0} bản ghi (records read)`;

    $('job-error').hidden = !job.error;
    $('job-error').textContent = job.error ? `Lỗi (error): ${job.error}` : '';

    const report = job.report || null;
    fillTable($('job-counts'), VERDICTS.map(([key, label]) => [label, report ? report[key] : null]));
    fillTable($('job-changes'), CHANGES.map(([key, label]) => [label, job.changes ? job.changes[key] : null]));
    const reasons = Object.entries((report && report.reasons) || {}).sort((a, b) => b[1] - a[1]);
    fillTable($('job-reasons'), reasons.length ? reasons : [['—', null]]);

    const links = job.links || [];
    setDownload($('link-report'), linkHref(links, 'report', `/jobs/${job.id}/report`), `job-${job.id}-report.json`);
    setDownload($('link-quarantine'), linkHref(links, 'quarantine', `/jobs/${job.id}/quarantine`),
      `job-${job.id}-rejected.geojson`);
    $('job-result').hidden = !(finished || report);

    const state = $('job-state');
    state.className = job.state;
    state.textContent = job.state; // exactly the state string: the browser test reads it
  }

  function fillTable(table, rows) {
    const tbody = table.tBodies[0];
    tbody.replaceChildren();
    for (const [label, value] of rows) {
      const tr = tbody.insertRow();
      const th = document.createElement('th');
      th.textContent = label;
      tr.append(th);
      const td = tr.insertCell();
      td.className = 'num';
      td.textContent = landdb.cellText(value);
    }
  }

  function linkHref(links, rel, fallback) {
    const link = links.find((l) => l.rel === rel);
    return link ? link.href : fallback;
  }

  // A plain link without a key; with a key, fetch + blob so the download
  // carries the Authorization header.
  function setDownload(a, href, filename) {
    a.href = href;
    a.download = filename;
    a.onclick = async (e) => {
      if (!landdb.getKey()) return; // the browser follows the link itself
      e.preventDefault();
      try {
        await landdb.download(href, filename);
      } catch (err) {
        status.className = 'error';
        status.textContent = `Không tải được (download failed): ${err.message}`;
      }
    };
  }

  function formatBytes(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
    return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  }
})();
