// camstream viewer page.
//
// The stream is read with fetch() and split into JPEG parts here, rather than
// handed to <img src="stream.mjpg">, because an <img> never reconnects by
// itself and hides each part's capture timestamp. Reading the parts ourselves
// gives reconnection with backoff, a stall watchdog, the frame age and an
// exact fps. Browsers without streaming fetch fall back to the plain <img>.
"use strict";

(() => {
  const STREAM_PATH = "stream.mjpg";
  const STATUS_PATH = "status";
  const STATUS_EVERY_MS = 2000;
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 8000;
  const STALL_MIN_MS = 5000;
  const MAX_HEADER_BYTES = 16384;

  // Authentication plugs in here (a later issue): every URL the page requests
  // goes through withAuth() and every fetch() takes authHeaders(). A token
  // read from "#token=…" into sessionStorage would be added in these two.
  const auth = {
    query: () => "",
    headers: () => ({}),
  };
  const withAuth = (path) => {
    const query = auth.query();
    if (!query) return path;
    return path + (path.includes("?") ? "&" : "?") + query;
  };
  const authHeaders = () => auth.headers();

  const $ = (id) => document.getElementById(id);
  const ui = {
    video: $("video"),
    state: $("state"),
    overlayTitle: $("overlay-title"),
    overlayDetail: $("overlay-detail"),
    retry: $("retry"),
    fps: $("fps"),
    age: $("age"),
    res: $("res"),
    viewers: $("viewers"),
    viewersLabel: $("viewers-label"),
    snapshot: $("snapshot"),
    fullscreen: $("fullscreen"),
  };

  // ---- view state -------------------------------------------------------

  function setState(name, title, detail = "") {
    document.body.dataset.state = name;
    ui.state.textContent = title;
    ui.overlayTitle.textContent = title;
    ui.overlayDetail.textContent = detail;
    ui.retry.hidden = name !== "reconnecting";
  }

  const shown = []; // display times (ms) of the frames in the last second
  let lastFrameAt = 0;
  let frameIntervalMs = 0; // smoothed interval between parts, for the watchdog

  function noteFrameShown(capturedAtMs) {
    const now = performance.now();
    shown.push(now);
    while (shown.length && shown[0] < now - 1000) shown.shift();
    ui.fps.textContent = shown.length.toFixed(0);
    if (capturedAtMs > 0) {
      const ageMs = Date.now() - capturedAtMs;
      ui.age.textContent = ageMs < 0 ? "clock skew" : formatAge(ageMs);
    }
    const { naturalWidth: w, naturalHeight: h } = ui.video;
    if (w > 0) ui.res.textContent = `${w}×${h}`;
  }

  function formatAge(ms) {
    return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
  }

  // ---- showing frames: the newest wins --------------------------------------

  let pending = null; // the newest part not yet shown
  let decoding = false;
  let shownUrl = null;

  function offerFrame(part) {
    pending = part; // a newer part replaces one not yet shown: no backlog
    if (!decoding) showPending();
  }

  async function showPending() {
    decoding = true;
    while (pending) {
      const part = pending;
      pending = null;
      const url = URL.createObjectURL(new Blob([part.body], { type: part.type }));
      ui.video.src = url;
      try {
        await ui.video.decode();
      } catch {
        // A corrupt frame: keep the previous image and go on.
        URL.revokeObjectURL(url);
        continue;
      }
      if (shownUrl) URL.revokeObjectURL(shownUrl);
      shownUrl = url;
      noteFrameShown(part.capturedAtMs);
    }
    decoding = false;
  }

  // ---- multipart/x-mixed-replace parser -----------------------------------

  const encoder = new TextEncoder();
  const decoder = new TextDecoder("latin1");

  function indexOf(haystack, needle, from, to) {
    const first = needle[0];
    for (let i = from; i <= to - needle.length; i++) {
      if (haystack[i] !== first) continue;
      let j = 1;
      while (j < needle.length && haystack[i + j] === needle[j]) j++;
      if (j === needle.length) return i;
    }
    return -1;
  }

  // Feeds on chunks; calls onPart({type, body, capturedAtMs, seq}) per part.
  // Every part must carry Content-Length (camstream's always do).
  class MultipartParser {
    constructor(boundary, onPart) {
      this.delimiter = encoder.encode(`--${boundary}\r\n`);
      this.headerEnd = encoder.encode("\r\n\r\n");
      this.onPart = onPart;
      this.buf = new Uint8Array(1 << 16);
      this.start = 0;
      this.end = 0;
      this.headers = null; // the current part's headers, once read
    }

    push(chunk) {
      this.append(chunk);
      for (;;) {
        if (!this.headers) {
          const at = indexOf(this.buf, this.delimiter, this.start, this.end);
          if (at < 0) return;
          const from = at + this.delimiter.length;
          const stop = indexOf(this.buf, this.headerEnd, from, this.end);
          if (stop < 0) {
            if (this.end - from > MAX_HEADER_BYTES) throw new Error("part headers too long");
            return;
          }
          this.headers = parseHeaders(decoder.decode(this.buf.subarray(from, stop)));
          this.start = stop + this.headerEnd.length;
          if (!(this.headers.length >= 0)) throw new Error("a part without Content-Length");
        }
        if (this.end - this.start < this.headers.length) return;
        const body = this.buf.slice(this.start, this.start + this.headers.length);
        this.start += this.headers.length;
        const h = this.headers;
        this.headers = null;
        this.onPart({ type: h.type, body, capturedAtMs: h.capturedAtMs, seq: h.seq });
      }
    }

    append(chunk) {
      if (this.start === this.end) this.start = this.end = 0;
      if (this.end + chunk.length > this.buf.length) {
        const live = this.end - this.start;
        if (live + chunk.length <= this.buf.length) {
          this.buf.copyWithin(0, this.start, this.end);
        } else {
          const next = new Uint8Array(2 * (live + chunk.length));
          next.set(this.buf.subarray(this.start, this.end));
          this.buf = next;
        }
        this.start = 0;
        this.end = live;
      }
      this.buf.set(chunk, this.end);
      this.end += chunk.length;
    }
  }

  function parseHeaders(text) {
    const fields = {};
    for (const line of text.split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon > 0) fields[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number.parseInt(fields["content-length"] ?? "", 10);
    const timestamp = Number.parseFloat(fields["x-timestamp"] ?? "");
    return {
      type: fields["content-type"] || "image/jpeg",
      length: Number.isFinite(length) ? length : -1,
      capturedAtMs: Number.isFinite(timestamp) ? timestamp * 1000 : 0,
      seq: Number.parseInt(fields["x-frame-seq"] ?? "-1", 10),
    };
  }

  // ---- connection, watchdog, reconnection ---------------------------------

  let controller = null; // aborts the current stream
  let retryTimer = 0;
  let attempt = 0;

  async function connect() {
    clearTimeout(retryTimer);
    if (controller) controller.abort();
    const mine = new AbortController();
    controller = mine;
    lastFrameAt = performance.now();
    setState(attempt ? "reconnecting" : "connecting", attempt ? "reconnecting…" : "connecting…");
    let error = "the stream ended";
    try {
      const response = await fetch(withAuth(STREAM_PATH), {
        cache: "no-store",
        headers: authHeaders(),
        signal: mine.signal,
      });
      if (!response.ok) throw new Error(`HTTP ${response.status} ${await response.text()}`);
      const match = /boundary="?([^";]+)"?/i.exec(response.headers.get("Content-Type") || "");
      if (!match) throw new Error("not a multipart stream");
      const parser = new MultipartParser(match[1], (part) => {
        const now = performance.now();
        if (lastFrameAt) frameIntervalMs = 0.8 * frameIntervalMs + 0.2 * (now - lastFrameAt);
        lastFrameAt = now;
        if (attempt || document.body.dataset.state !== "live") {
          attempt = 0;
          setState("live", "live");
        }
        offerFrame(part);
      });
      const reader = response.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parser.push(value);
      }
    } catch (err) {
      if (err && err.name === "AbortError") error = "";
      else if (err instanceof TypeError) error = "the server is unreachable"; // fetch's network error
      else error = String((err && err.message) || err);
    }
    if (controller === mine && !mine.signal.aborted) scheduleReconnect(error);
  }

  function scheduleReconnect(reason) {
    controller = null;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt);
    const delay = base * (0.75 + 0.5 * Math.random()); // jitter: viewers do not retry in step
    attempt += 1;
    const detail = `${reason ? reason + " — " : ""}retry ${attempt} in ${(delay / 1000).toFixed(1)} s`;
    setState("reconnecting", "reconnecting…", detail);
    ui.fps.textContent = "0";
    ui.age.textContent = "–";
    retryTimer = setTimeout(connect, delay);
  }

  // Runs every second: refreshes the fps and restarts a stream (or a connection
  // attempt) that has been silent for too long.
  function tick() {
    const now = performance.now();
    while (shown.length && shown[0] < now - 1000) shown.shift();
    if (document.body.dataset.state === "live") ui.fps.textContent = String(shown.length);
    if (!controller) return;
    const limit = Math.max(STALL_MIN_MS, 3 * frameIntervalMs);
    if (now - lastFrameAt > limit) {
      const stalled = controller;
      controller = null;
      stalled.abort();
      scheduleReconnect(`no frame for ${(limit / 1000).toFixed(0)} s`);
    }
  }

  function pause() {
    clearTimeout(retryTimer);
    if (controller) controller.abort();
    controller = null;
    setState("paused", "paused", "the page is hidden; the stream resumes when it is shown");
  }

  // ---- server status: viewer count --------------------------------------

  async function pollStatus() {
    if (document.hidden) return;
    try {
      const response = await fetch(withAuth(STATUS_PATH), { cache: "no-store", headers: authHeaders() });
      if (!response.ok) return;
      const status = await response.json();
      const count = status.viewer_count ?? (status.viewers || []).length;
      ui.viewers.textContent = String(count);
      ui.viewersLabel.textContent = count === 1 ? "viewer" : "viewers";
      if (!ui.video.naturalWidth && status.width) ui.res.textContent = `${status.width}×${status.height}`;
    } catch {
      // The stream's own reconnection reports the outage.
    }
  }

  // ---- fullscreen -------------------------------------------------------

  function toggleFullscreen() {
    const stage = $("stage");
    if (document.fullscreenElement || document.webkitFullscreenElement) {
      (document.exitFullscreen || document.webkitExitFullscreen).call(document);
    } else if (stage.requestFullscreen) {
      stage.requestFullscreen().catch(() => document.body.classList.toggle("pseudo-fullscreen"));
    } else if (stage.webkitRequestFullscreen) {
      stage.webkitRequestFullscreen();
    } else {
      document.body.classList.toggle("pseudo-fullscreen"); // iPhone: no element fullscreen
    }
  }

  function updateFullscreenLabel() {
    const on =
      document.fullscreenElement ||
      document.webkitFullscreenElement ||
      document.body.classList.contains("pseudo-fullscreen");
    ui.fullscreen.textContent = on ? "Exit fullscreen" : "Fullscreen";
  }

  // ---- fallback: plain <img>, reconnected by hand --------------------------

  function plainImage() {
    const load = () => {
      ui.video.src = withAuth(`${STREAM_PATH}?t=${Date.now()}`);
    };
    ui.video.addEventListener("load", () => {
      attempt = 0;
      setState("live", "live");
      noteFrameShown(0);
    });
    ui.video.addEventListener("error", () => {
      const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt++);
      setState("reconnecting", "reconnecting…", `retry in ${(delay / 1000).toFixed(1)} s`);
      retryTimer = setTimeout(load, delay);
    });
    load();
  }

  // ---- start ------------------------------------------------------------

  ui.snapshot.href = withAuth("snapshot.jpg");
  ui.fullscreen.addEventListener("click", () => {
    toggleFullscreen();
    updateFullscreenLabel();
  });
  document.addEventListener("fullscreenchange", updateFullscreenLabel);
  document.addEventListener("webkitfullscreenchange", updateFullscreenLabel);

  const canStream = typeof ReadableStream !== "undefined" && "body" in Response.prototype;
  if (!canStream) {
    plainImage();
    return;
  }
  ui.retry.addEventListener("click", () => {
    attempt = Math.max(attempt, 1);
    connect();
  });
  // Hidden tabs stop streaming, so on-demand capture can sleep.
  document.addEventListener("visibilitychange", () => (document.hidden ? pause() : connect()));
  window.addEventListener("online", () => {
    if (document.body.dataset.state === "reconnecting") connect();
  });
  setInterval(tick, 1000);
  setInterval(pollStatus, STATUS_EVERY_MS);
  pollStatus();
  if (document.hidden) pause();
  else connect();
})();
