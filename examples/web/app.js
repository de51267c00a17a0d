// puyu_apps example apps: what the three pages share. Plain JavaScript over the public HTTP API, no build step:
//   POST /v1/jobs (multipart: vertical, file or text, params)  -> 202 {id}
//   GET  /v1/jobs/{id}                                         -> status + last progress event
//   GET  /v1/jobs/{id}/result                                  -> the vertical's typed result (JSON)
//   GET  /v1/jobs/{id}/artifacts[/{name}]                      -> what the vertical rendered (PNG, PDF, WAV)
// Every refusal (wrong type, too big, corrupt, busy) comes back from the server as a message; the page shows it.
"use strict";

const Puyu = (() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const KEY = "puyu-api-key";

  /** el("p", {class: "x"}, "text", child...): a DOM element. */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function authHeaders() {
    const key = localStorage.getItem(KEY);
    return key ? { Authorization: `Bearer ${key}` } : {};
  }

  async function api(path, options = {}) {
    let response;
    try {
      response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
    } catch (e) {
      return { status: 0, ok: false, body: { error: { message: "the server cannot be reached; is it running?" } } };
    }
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      /* not JSON */
    }
    return { status: response.status, ok: response.ok, body };
  }

  function messageOf(res) {
    const b = res.body || {};
    return (
      (b.error && b.error.message) ||
      b.message ||
      (typeof b.detail === "string" ? b.detail : "") ||
      `the server answered HTTP ${res.status}`
    );
  }

  /** An object URL for a file the server serves behind the API key (img/audio tags cannot send headers). */
  async function blobUrl(path) {
    const r = await fetch(path, { headers: authHeaders() });
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
    return URL.createObjectURL(await r.blob());
  }

  // -- several files -> one uncompressed zip (the server unpacks it and hands the pipeline the folder) --------
  const CRC = (() => {
    const t = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      t[n] = c >>> 0;
    }
    return t;
  })();
  function crc32(bytes) {
    let c = 0xffffffff;
    for (let i = 0; i < bytes.length; i++) c = CRC[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  }
  async function zipFiles(files) {
    const enc = new TextEncoder(),
      parts = [],
      central = [],
      seen = new Set();
    let offset = 0;
    for (const f of files) {
      let name = (f.webkitRelativePath || f.name).replace(/^\/+/, "");
      for (let i = 2; seen.has(name); i++) name = `${i}_${f.name}`;
      seen.add(name);
      const data = new Uint8Array(await f.arrayBuffer()),
        nameBytes = enc.encode(name),
        crc = crc32(data);
      const local = new DataView(new ArrayBuffer(30));
      [
        [0, 0x04034b50, 4],
        [4, 20, 2],
        [6, 0x0800, 2],
        [8, 0, 2],
        [10, 0, 2],
        [12, 0x21, 2],
        [14, crc, 4],
        [18, data.length, 4],
        [22, data.length, 4],
        [26, nameBytes.length, 2],
        [28, 0, 2],
      ].forEach(([at, v, n]) => (n === 4 ? local.setUint32(at, v, true) : local.setUint16(at, v, true)));
      const cd = new DataView(new ArrayBuffer(46));
      [
        [0, 0x02014b50, 4],
        [4, 20, 2],
        [6, 20, 2],
        [8, 0x0800, 2],
        [10, 0, 2],
        [12, 0, 2],
        [14, 0x21, 2],
        [16, crc, 4],
        [20, data.length, 4],
        [24, data.length, 4],
        [28, nameBytes.length, 2],
        [30, 0, 2],
        [32, 0, 2],
        [34, 0, 2],
        [36, 0, 2],
        [38, 0, 4],
        [42, offset, 4],
      ].forEach(([at, v, n]) => (n === 4 ? cd.setUint32(at, v, true) : cd.setUint16(at, v, true)));
      parts.push(local.buffer, nameBytes, data);
      central.push(cd.buffer, nameBytes);
      offset += 30 + nameBytes.length + data.length;
    }
    const cdSize = central.reduce((s, p) => s + p.byteLength, 0),
      end = new DataView(new ArrayBuffer(22));
    [
      [0, 0x06054b50, 4],
      [4, 0, 2],
      [6, 0, 2],
      [8, files.length, 2],
      [10, files.length, 2],
      [12, cdSize, 4],
      [16, offset, 4],
      [20, 0, 2],
    ].forEach(([at, v, n]) => (n === 4 ? end.setUint32(at, v, true) : end.setUint16(at, v, true)));
    return new Blob([...parts, ...central, end.buffer], { type: "application/zip" });
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const fmtBytes = (n) =>
    n > 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1024))} KB`;

  /**
   * Wire a page: file choice (drop zone, picker, sample button), submission as a job, progress, errors, result.
   * opts: {vertical, multiple: zip several files, params(): job params, text(): a text input instead of a file,
   *        sample: {url, name}, render(result, job): fill #result}
   */
  function app(opts) {
    const body = document.body,
      form = $("#upload"),
      input = $("#file"),
      drop = $("#drop"),
      run = $("#run");
    const chosen = $("#chosen"),
      errorBox = $("#error"),
      status = $("#status"),
      bar = $(".progress", status);
    const resultBox = $("#result");
    let files = [];
    let busy = false;

    function setState(s) {
      body.dataset.state = s;
    }
    setState("idle");

    function showError(title, detail) {
      // the server names files by their path on the server; the user knows them by their name
      detail = String(detail || "").replace(/(?:\/[\w.@~+-]+){2,}\/([\w.@~+-]+)/g, "$1");
      errorBox.replaceChildren(el("b", {}, title), detail ? el("span", { class: "detail" }, detail) : null);
      errorBox.hidden = false;
      status.hidden = true;
      setState("error");
    }
    function progress(fraction, text) {
      status.hidden = false;
      bar.parentElement.classList.toggle("indeterminate", fraction === null || fraction === undefined);
      if (fraction !== null && fraction !== undefined) bar.style.width = `${Math.round(fraction * 100)}%`;
      $("#stage").textContent = text;
    }
    function choose(list) {
      files = Array.from(list || []);
      if (!opts.multiple && files.length > 1) files = files.slice(0, 1);
      const total = files.reduce((s, f) => s + f.size, 0);
      chosen.textContent =
        files.length === 0
          ? ""
          : files.length === 1
            ? `${files[0].name} (${fmtBytes(total)})`
            : `${files.length} files (${fmtBytes(total)}), sent as one zip`;
      refresh();
    }
    function refresh() {
      run.disabled = busy || !(files.length || (opts.text && opts.text()));
    }

    input.addEventListener("change", () => choose(input.files));
    drop.addEventListener("click", (e) => {
      if (e.target === drop) input.click();
    });
    drop.addEventListener("dragover", (e) => {
      e.preventDefault();
      drop.classList.add("over");
    });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      choose(e.dataTransfer.files);
    });
    form.addEventListener("input", refresh);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      submit();
    });

    // what this server accepts, and whether it wants a key
    api("server.json").then((res) => {
      if (!res.ok) return;
      const info = res.body,
        v = info.verticals[opts.vertical];
      $("#model").textContent = `model: ${info.model}`;
      $("#accepts").textContent = v
        ? `Accepted: ${v.suffixes.join(" ")} · up to ${info.max_upload_mb} MB per upload`
        : `This server does not offer the ${opts.vertical} vertical.`;
      if (info.keys_required) $("details.key").open = true;
    });
    const keyInput = $("#apikey");
    keyInput.value = localStorage.getItem(KEY) || "";
    keyInput.addEventListener("change", () => localStorage.setItem(KEY, keyInput.value.trim()));

    const sampleBtn = $("#sample");
    if (opts.sample && sampleBtn) {
      fetch(opts.sample.url, { method: "HEAD" }).then((r) => {
        sampleBtn.hidden = !r.ok;
      });
      sampleBtn.addEventListener("click", async () => {
        const r = await fetch(opts.sample.url);
        if (!r.ok) return showError("The sample is not available", `${opts.sample.url}: HTTP ${r.status}`);
        choose([new File([await r.blob()], opts.sample.name)]);
        submit();
      });
    } else if (sampleBtn) sampleBtn.hidden = true;

    function upload(formData) {
      // XMLHttpRequest: it reports upload progress, fetch does not
      return new Promise((resolve) => {
        const xhr = new XMLHttpRequest();
        xhr.open("POST", "/v1/jobs");
        for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
        xhr.upload.onprogress = (e) =>
          e.lengthComputable &&
          progress((e.loaded / e.total) * 0.1, `uploading ${fmtBytes(e.loaded)} of ${fmtBytes(e.total)}`);
        xhr.onload = () => {
          let b = null;
          try {
            b = JSON.parse(xhr.responseText);
          } catch (e) {
            /* not JSON */
          }
          resolve({ status: xhr.status, ok: xhr.status >= 200 && xhr.status < 300, body: b });
        };
        xhr.onerror = () =>
          resolve({
            status: 0,
            ok: false,
            body: { error: { message: "the upload was interrupted: " + "the server cannot be reached" } },
          });
        xhr.send(formData);
      });
    }

    async function submit() {
      if (busy) return;
      const text = opts.text ? opts.text() : "";
      if (!files.length && !text) return;
      busy = true;
      refresh();
      errorBox.hidden = true;
      resultBox.hidden = true;
      resultBox.replaceChildren();
      setState("uploading");
      const label = files.length > 1 ? `${files.length} files` : files.length ? files[0].name : "the text";
      try {
        const fd = new FormData();
        fd.append("vertical", opts.vertical);
        fd.append("params", JSON.stringify(opts.params ? opts.params() : {}));
        if (files.length > 1) {
          progress(null, `packing ${files.length} files`);
          fd.append("file", await zipFiles(files), "upload.zip");
        } else if (files.length === 1) fd.append("file", files[0], files[0].name);
        else fd.append("text", text);
        progress(0, "uploading");
        const sent = await upload(fd);
        if (!sent.ok) {
          const what = {
            413: "too large",
            415: "not accepted",
            401: "refused: an API key is needed",
            429: "refused: too many requests",
            503: "refused: the server is busy",
          }[sent.status];
          return showError(`${label} was ${what || "refused"}`, messageOf(sent));
        }
        const job = await poll(sent.body.id, label);
        if (!job) return;
        const res = await api(`/v1/jobs/${job.id}/result`);
        const result = res.body && res.body.result;
        if (!res.ok || !result) return showError(`No result for ${label}`, messageOf(res));
        if (result.blocked)
          return showError("The answer was withheld by the safety filter", result.message || result.reason);
        const listing = await api(`/v1/jobs/${job.id}/artifacts`);
        const artifacts = {};
        for (const a of listing.ok ? listing.body.artifacts : []) artifacts[a.name] = a;
        status.hidden = true;
        resultBox.hidden = false;
        await opts.render(result, { job, artifacts, files });
        setState("done");
      } catch (e) {
        showError("The page hit an error", String(e));
      } finally {
        busy = false;
        refresh();
      }
    }

    async function poll(id, label) {
      const t0 = Date.now();
      for (;;) {
        const res = await api(`/v1/jobs/${id}`);
        if (!res.ok) {
          showError("Lost track of the job", messageOf(res));
          return null;
        }
        const job = res.body,
          secs = ((Date.now() - t0) / 1000).toFixed(0);
        if (job.status === "done") {
          progress(1, "done");
          return job;
        }
        if (job.status === "failed") {
          showError(`${label} could not be processed`, job.error || "the job failed");
          return null;
        }
        setState("running");
        if (job.status === "queued") progress(0.1, `waiting in the queue (${secs} s)`);
        else {
          const p = job.progress || {};
          const f = p.fraction === null || p.fraction === undefined ? null : 0.1 + 0.9 * p.fraction;
          progress(f, `${p.stage || "starting"}${p.message ? ": " + p.message : ""} (${secs} s)`);
        }
        await sleep(350);
      }
    }
    return { choose, submit };
  }

  /** A link that opens an artifact (fetched with the key) in a new tab. */
  function artifactLink(artifacts, name, label) {
    const a = artifacts[name];
    if (!a) return null;
    const link = el("a", { href: "#", "data-artifact": name }, `${label} (${fmtBytes(a.bytes)})`);
    link.addEventListener("click", async (e) => {
      e.preventDefault();
      window.open(await blobUrl(a.url), "_blank");
    });
    return link;
  }

  return { $, el, api, blobUrl, app, artifactLink, zipFiles };
})();
