// The dashboard's one connection to the relay: the token, the REST calls and the live
// event stream. Every view reads and writes through `relay` (see app.js).
//
// - The token lives in this origin's localStorage (`relaybus.token`); a URL ending in
//   `#token=T` (what `relaybus ui` opens) signs in and is then cleaned from the address.
// - `relay.api(method, path, {query, body})` returns the parsed JSON; a 401 opens the
//   sign-in dialog; any other error throws an `ApiError` with the problem's detail.
// - `relay.on(prefix, fn)` calls `fn(event)` for each live event whose kind starts with
//   `prefix` ("" for all). The stream is `GET /v1/stream` read with fetch (EventSource
//   cannot send a token); after a drop it reconnects with `Last-Event-ID`, so the server
//   replays what was missed, and an id at or below the last one seen is dropped: nothing
//   is missed or shown twice.

const TOKEN_KEY = "relaybus.token";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/** Milliseconds the other views wait for the first view's draw before loading anyway. */
const FIRST_DRAW_WAIT = 1500;

export function createRelay() {
  let resolveReady;
  const ready = new Promise((resolve) => (resolveReady = resolve));
  let resolveDrawn;
  const drawn = new Promise((resolve) => (resolveDrawn = resolve));
  return {
    // Reactive state (Alpine makes the store reactive).
    status: "connecting", // connecting | live | reconnecting | signed-out
    me: null, // /v1/info: {version, backend, workspace, auth, agent}
    signIn: { open: false, error: "", token: "" },
    view: "agents",
    route: [],
    lastEventId: 0,
    notice: "",
    _token: localStorage.getItem(TOKEN_KEY) || "", // the header's Sign out shows with it

    // Not reactive in use: listeners and the stream's controller.
    _listeners: [],
    _abort: null,
    _resumable: false, // a stream has been ready: reconnect from lastEventId
    _ready: ready,
    _resolveReady: resolveReady,
    _drawn: drawn,

    get admin() {
      return this.me !== null && this.me.agent === null;
    },
    get token() {
      return this._token;
    },

    /** Keep `token` for this origin (localStorage) and use it from now on. */
    saveToken(token) {
      localStorage.setItem(TOKEN_KEY, token);
      this._token = token;
    },

    /** Sign in from the address (`#token=`), then load who we are and go live. */
    async start() {
      const match = location.hash.match(/(?:^#|&)token=([^&]+)/);
      if (match) {
        this.saveToken(decodeURIComponent(match[1]));
        history.replaceState(null, "", location.pathname + location.search);
      }
      this.route = parseRoute(location.hash);
      this.view = this.route[0];
      window.addEventListener("hashchange", () => {
        this.route = parseRoute(location.hash);
        this.view = this.route[0];
        resolveDrawn(); // a view shown before the first one drew loads at once
      });
      await this.connect();
    },

    /** Resolves once signed in and the stream is open (views load their lists then). */
    ready() {
      return this._ready;
    },

    /** The view shown first has drawn its first page: the others load now. */
    drew() {
      resolveDrawn();
    },

    /** Run `load` once signed in and live; an error other than a 401 (which opens the
     * sign-in dialog) is shown as a notice. Views start their first load with this.
     * The load of a `view` that is not the one shown waits until the shown view has
     * drawn (`drew()`), the user switches views, or FIRST_DRAW_WAIT passes, so that
     * the first screen does not share the network and the page's thread with views
     * nobody looks at yet. */
    async whenReady(load, view) {
      await this._ready;
      if (view && this.view !== view) {
        setTimeout(resolveDrawn, FIRST_DRAW_WAIT);
        await drawn;
      }
      try {
        await load();
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 401)) this.flash(error.message);
      }
    },

    async connect() {
      try {
        this.me = await this.api("GET", "/v1/info");
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 401)) this.flash(error.message);
        return;
      }
      this.signIn.open = false;
      this.stream();
    },

    async submitToken() {
      const token = this.signIn.token.trim();
      if (!token) return;
      this.saveToken(token);
      this.signIn.token = "";
      this.signIn.error = "";
      await this.connect();
      if (this.signIn.open) this.signIn.error = "That token was refused.";
    },

    signOut() {
      localStorage.removeItem(TOKEN_KEY);
      if (this._abort) this._abort.abort();
      location.hash = "";
      location.reload();
    },

    on(prefix, fn) {
      this._listeners.push([prefix, fn]);
    },

    flash(text) {
      this.notice = text;
      clearTimeout(this._noticeTimer);
      this._noticeTimer = setTimeout(() => (this.notice = ""), 6000);
    },

    /** One REST call: `query` becomes the query string (null and "" left out). */
    async api(method, path, { query, body } = {}) {
      const url = new URL(path, location.origin);
      for (const [key, value] of Object.entries(query || {})) {
        if (value === null || value === undefined || value === "") continue;
        for (const item of Array.isArray(value) ? value : [value]) {
          url.searchParams.append(key, item);
        }
      }
      const headers = { Accept: "application/json" };
      if (this.token) headers.Authorization = `Bearer ${this.token}`;
      if (body !== undefined) headers["Content-Type"] = "application/json";
      const response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (response.status === 204) return null;
      const data = await response.json().catch(() => ({}));
      if (response.status === 401) {
        this.status = "signed-out";
        this.signIn.open = true;
      }
      if (!response.ok) throw new ApiError(response.status, data);
      return data;
    },

    /** Read /v1/stream until the page closes, reconnecting after a drop. */
    async stream() {
      let delay = 250;
      for (;;) {
        const abort = new AbortController();
        this._abort = abort;
        const headers = { Accept: "text/event-stream" };
        if (this.token) headers.Authorization = `Bearer ${this.token}`;
        // Once a stream has said where the log stood, resume from there: even from 0 (an
        // empty log), since a stream opened without the header starts "from now".
        if (this._resumable) headers["Last-Event-ID"] = String(this.lastEventId);
        try {
          const response = await fetch("/v1/stream", { headers, signal: abort.signal });
          if (response.status === 401) {
            this.status = "signed-out";
            this.signIn.open = true;
            return;
          }
          if (!response.ok) throw new Error(`stream: HTTP ${response.status}`);
          for await (const frame of frames(response.body)) {
            if (frame.event === "ready") {
              const ready = JSON.parse(frame.data);
              if (!this._resumable) this.lastEventId = ready.last_event_id;
              this._resumable = true;
              this.status = "live";
              delay = 250;
              this._resolveReady();
              continue;
            }
            const id = Number(frame.id);
            if (!id || id <= this.lastEventId) continue; // replayed twice: once is enough
            this.lastEventId = id;
            this.dispatch(JSON.parse(frame.data));
          }
        } catch (error) {
          if (abort.signal.aborted) return;
        }
        this.status = "reconnecting";
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 5000);
      }
    },

    dispatch(event) {
      for (const [prefix, fn] of this._listeners) {
        if (!event.kind.startsWith(prefix)) continue;
        try {
          fn(event);
        } catch (error) {
          console.error(error);
        }
      }
    },
  };
}

/** `#/tasks/12` → ["tasks", "12"]; the default view is agents. */
function parseRoute(hash) {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  return parts.length ? parts.map(decodeURIComponent) : ["agents"];
}

/** The Server-Sent Events of a fetch body: {id, event, data} per frame. */
async function* frames(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const frame = { id: "", event: "message", data: "" };
      const data = [];
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "data") data.push(text);
        else if (field === "id") frame.id = text;
        else if (field === "event") frame.event = text;
      }
      if (!data.length) continue;
      frame.data = data.join("\n");
      yield frame;
    }
  }
}
