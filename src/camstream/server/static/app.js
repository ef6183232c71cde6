// camstream viewer page.
//
// The stream is read with fetch() and split into JPEG parts here, rather than
// handed to <img src="stream.mjpg">, because an <img> never reconnects by
// itself and hides each part's capture timestamp. Reading the parts ourselves
// gives reconnection with backoff, a stall watchdog, the frame age and an
// exact fps. Browsers without streaming fetch fall back to the plain <img>.
//
// A server started with a token answers 401 on the stream, the snapshot and
// /status. The page then takes the token from the address's fragment
// ("/#token=…": browsers never send a fragment to a server) or asks for it, and
// keeps it in sessionStorage (this tab only, gone when the tab closes; no
// cookie, so no other site can make the browser send it). It sends the token
// only in an "Authorization: Bearer" header of its fetch() requests, never in
// a URL, so it is in no access log, proxy log, Referer header or history entry.
"use strict";

(() => {
  const STREAM_PATH = "stream.mjpg";
  const STATUS_PATH = "status";
  const SNAPSHOT_PATH = "snapshot.jpg";
  const STATUS_EVERY_MS = 2000;
  // Reconnect delays: 0.25–0.5 s, then 0.5–1 s, then 0.75–1.5 s for good. The
  // cap is short so that a restarted server has its viewers back within about
  // two seconds; a failed attempt on a LAN costs one refused connection.
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 1500;
  const RETRY_AFTER_MAX_MS = 30000; // the most a 503's Retry-After may ask for
  const STALL_MIN_MS = 5000;
  const MAX_HEADER_BYTES = 16384;

  // ---- the access token ----------------------------------------------------

  const TOKEN_KEY = "camstream.token";
  let token = null; // also kept here, for browsers with storage turned off

  function loadToken() {
    try {
      token = sessionStorage.getItem(TOKEN_KEY);
    } catch {
      // storage disabled: the token lives as long as the page
    }
    // "#token=…" or "?token=…" in the address wins over a stored one (the
    // fragment if both); then it leaves the address bar, and so the history,
    // bookmarks and anything copied from there. The server and its 401 page
    // speak of "?token=", and the banner prints "#token=" (never sent to a server).
    const fromHash = takeToken(location.hash.slice(1));
    const fromQuery = takeToken(location.search.slice(1));
    if (!fromHash.found && !fromQuery.found) return;
    const search = fromQuery.rest ? `?${fromQuery.rest}` : "";
    const hash = fromHash.rest ? `#${fromHash.rest}` : "";
    history.replaceState(history.state, "", location.pathname + search + hash);
    const value = fromHash.value || fromQuery.value;
    if (value) saveToken(value);
  }

  // Splits "a=1&token=x&b=2" into the token's value and the other fields.
  function takeToken(text) {
    const fields = text.split("&");
    const at = fields.findIndex((field) => field.startsWith("token="));
    if (at < 0) return { found: false, value: "", rest: text };
    let value = fields[at].slice("token=".length).replace(/\+/g, " ");
    try {
      value = decodeURIComponent(value);
    } catch {
      // not percent-encoded after all: take it as it is
    }
    fields.splice(at, 1);
    return { found: true, value, rest: fields.filter(Boolean).join("&") };
  }

  function saveToken(value) {
    token = value;
    try {
      if (value === null) sessionStorage.removeItem(TOKEN_KEY);
      else sessionStorage.setItem(TOKEN_KEY, value);
    } catch {
      // storage disabled: keep it in memory only
    }
  }

  // Every fetch() sends the token this way: headers are not logged, and they
  // are not part of the URL that a Referer header or the history would hold.
  const authHeaders = () => (token ? { Authorization: `Bearer ${token}` } : {});

  // Only for the plain-<img> fallback (browsers without streaming fetch): an
  // <img> cannot send headers, so there the token has to go in the query, and
  // it may then appear in the logs of the server and of any proxy on the way.
  // Referrer-Policy: no-referrer keeps it out of Referer headers at least.
  const withAuth = (path) => {
    if (!token) return path;
    return `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`;
  };

  const $ = (id) => document.getElementById(id);
  const ui = {
    video: $("video"),
    state: $("state"),
    overlayTitle: $("overlay-title"),
    overlayDetail: $("overlay-detail"),
    retry: $("retry"),
    authForm: $("auth"),
    authInput: $("token"),
    authError: $("auth-error"),
    fps: $("fps"),
    age: $("age"),
    res: $("res"),
    rate: $("rate"),
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
    ui.authForm.hidden = name !== "auth";
  }

  // The server wants a token and we have none, or the wrong one: ask for it.
  // Nothing reconnects until the user answers.
  let awaitingToken = false;

  function askForToken(sentToken) {
    awaitingToken = true;
    controller = null;
    clearTimeout(retryTimer);
    attempt = 0;
    if (sentToken) saveToken(null); // it was wrong: do not send it again
    setState("auth", "token required", "this server needs an access token");
    ui.authError.textContent = sentToken ? "wrong token" : "";
    ui.fps.textContent = "–";
    ui.authInput.value = "";
    ui.authInput.focus();
  }

  function submitToken(event) {
    event.preventDefault(); // the form goes nowhere (CSP: form-action 'none')
    const value = ui.authInput.value.trim();
    if (!value) return;
    ui.authInput.value = "";
    saveToken(value);
    awaitingToken = false;
    connect();
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
    // On a thin link the server sends a smaller tier: say so next to the stream's size.
    const size = `${w}×${h}`;
    if (w > 0) ui.res.textContent = streamSize && streamSize !== size ? `${size} of ${streamSize}` : size;
  }

  function formatAge(ms) {
    return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
  }

  // ---- showing frames: the newest wins --------------------------------------

  let pending = null; // the newest part not yet shown
  let decoding = false;
  let shownUrl = null;

  const arrived = []; // [time ms, bytes] of the parts received in the last second
  let streamSize = ""; // the full stream's size from /status, e.g. "1280×720"

  function offerFrame(part) {
    const now = performance.now();
    arrived.push([now, part.body.byteLength]);
    while (arrived.length && arrived[0][0] < now - 1000) arrived.shift();
    const bits = 8 * arrived.reduce((sum, [, bytes]) => sum + bytes, 0);
    ui.rate.textContent = (bits / 1e6).toFixed(1);
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
    let retryAfterMs = 0;
    const sentToken = token;
    try {
      const response = await fetch(STREAM_PATH, {
        cache: "no-store",
        headers: authHeaders(),
        signal: mine.signal,
      });
      if (response.status === 401) {
        mine.abort(); // drops the body
        if (controller === mine) askForToken(sentToken);
        return;
      }
      if (!response.ok) {
        const seconds = Number.parseFloat(response.headers.get("Retry-After") || "");
        if (Number.isFinite(seconds)) retryAfterMs = Math.min(RETRY_AFTER_MAX_MS, seconds * 1000);
        throw new Error(`HTTP ${response.status} ${(await response.text()).trim()}`);
      }
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
    if (controller === mine && !mine.signal.aborted) scheduleReconnect(error, retryAfterMs);
  }

  // Half to all of min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS · 2^attempt): the
  // jitter keeps viewers of a restarted server from all retrying in step.
  function backoffMs() {
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(attempt, 16));
    attempt += 1;
    return base * (0.5 + 0.5 * Math.random());
  }

  function scheduleReconnect(reason, minDelayMs = 0) {
    controller = null;
    const delay = Math.max(backoffMs(), minDelayMs); // e.g. "server full, retry after 5 s"
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
    if (document.hidden || awaitingToken) return;
    try {
      const response = await fetch(STATUS_PATH, { cache: "no-store", headers: authHeaders() });
      if (!response.ok) return; // a 401 is the stream's to report
      const status = await response.json();
      const count = status.viewer_count ?? (status.viewers || []).length;
      ui.viewers.textContent = String(count);
      ui.viewersLabel.textContent = count === 1 ? "viewer" : "viewers";
      if (status.width) streamSize = `${status.width}×${status.height}`;
      if (!ui.video.naturalWidth && status.width) ui.res.textContent = streamSize;
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

  // ---- snapshot: with a token, fetched here so the URL carries none ----------

  async function downloadSnapshot(event) {
    if (!token) return; // the plain link works
    event.preventDefault();
    try {
      const response = await fetch(SNAPSHOT_PATH, { cache: "no-store", headers: authHeaders() });
      if (!response.ok) return;
      const url = URL.createObjectURL(await response.blob());
      const link = document.createElement("a");
      link.href = url;
      link.download = `camstream-${new Date().toISOString().replace(/[:.]/g, "-")}.jpg`;
      link.click();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch {
      // the stream's reconnection reports an outage
    }
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
      // An <img> does not say why it failed (a 401 looks like any error), so
      // this keeps retrying; a wrong token has to be fixed in the address.
      const delay = backoffMs();
      setState("reconnecting", "reconnecting…", `retry in ${(delay / 1000).toFixed(1)} s`);
      retryTimer = setTimeout(load, delay);
    });
    load();
  }

  // ---- start ------------------------------------------------------------

  loadToken();
  ui.snapshot.addEventListener("click", downloadSnapshot);
  ui.authForm.addEventListener("submit", submitToken);
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
    if (awaitingToken) return;
    attempt = Math.max(attempt, 1);
    connect();
  });
  // Hidden tabs stop streaming, so on-demand capture can sleep.
  // A page waiting for its token stays as it is.
  document.addEventListener("visibilitychange", () => {
    if (awaitingToken) return;
    if (document.hidden) pause();
    else connect();
  });
  window.addEventListener("online", () => {
    if (document.body.dataset.state === "reconnecting") connect();
  });
  setInterval(tick, 1000);
  setInterval(pollStatus, STATUS_EVERY_MS);
  pollStatus();
  if (document.hidden) pause();
  else connect();
})();
