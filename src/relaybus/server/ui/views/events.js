// The live event feed: the recent log (`GET /v1/events`, a window of ids below the
// stream's cursor) and every live event (`relay.on("")`), newest first, each id once,
// at most KEEP kept, in a virtual list; filter by kind family, agent and text; pause
// following (live events wait, counted, until resumed); open an event's JSON and its
// links (agent, thread, task). Older windows load as the list is scrolled to its end.
//
// As in the agents view, the events are held outside Alpine's reactivity (`all`) and
// `shown` is computed once per change: a render reads it several times.
import Alpine from "../vendor/alpine-3.17.5.esm.min.js";
import { clock } from "../format.js";
import { virtualList } from "../virtual.js";

/** Events kept in the page (the oldest go first). */
export const KEEP = 5000;
/** Ids asked for per request: the API's largest page. */
const WINDOW = 1000;
/** The kind filter's choices: the families of the event log. */
export const FAMILIES = ["agent", "message", "task", "pair", "integration"];

export function eventsView(relay) {
  // Not reactive: the events kept (newest first), those held while paused, the ids of
  // both, and the live events not drawn yet.
  let all = [];
  let pending = [];
  const seen = new Set();
  let arrived = [];
  let flushing = null;

  return {
    ...virtualList(32),
    total: 0, // events kept
    shown: [], // those that pass the filters
    held: 0, // live events waiting while paused
    names: [], // the agent filter's suggestions
    floor: null, // every visible event above this id is loaded (0: the whole log)
    started: false,
    loading: false,
    paused: false,
    selected: null,
    filter: { kind: "", agent: "", text: "" },
    families: FAMILIES,
    clock,
    summary,
    links,

    init() {
      relay.on("", (event) => {
        arrived.push(event);
        flushing ??= setTimeout(() => this.flush(), 0);
      });
      this.$watch("filter", () => this.compute());
      this.$watch("$store.relay.view", (view) => view === "events" && this.show());
      if (relay.view === "events") this.show();
    },

    /** The first show loads the recent log (live events gather from the start). */
    show() {
      if (this.started) return;
      this.started = true;
      relay.whenReady(async () => {
        await this.loadOlder();
        relay.drew();
      });
    },

    /** The events kept, newest first (for the tests and the console). */
    kept() {
      return all;
    },

    /** Draw the live events gathered since the last flush (one redraw a burst). */
    flush() {
      flushing = null;
      const batch = arrived.filter((event) => !seen.has(event.id));
      arrived = [];
      if (!batch.length) return;
      for (const event of batch) seen.add(event.id);
      batch.reverse();
      if (this.paused) {
        pending = keep(batch.concat(pending), seen);
        this.held = pending.length;
      } else {
        this.merge(batch);
      }
    },

    /** Put `newer` (newest first, unseen) into the list, keeping the reader's place. */
    merge(newer) {
      // Live events follow all the others (the log was read up to the stream's cursor).
      all = keep(newer.concat(all), seen);
      this.compute();
      const scroller = this.$refs.scroller;
      const above = newer.filter(this.predicate()).length;
      if (scroller && scroller.scrollTop > 0 && above) {
        // Reading further down: the rows stay where they are (following shows the newest).
        this.$nextTick(() => (scroller.scrollTop += above * this.rowHeight));
      }
    },

    /** Load the next window of older events (the first call: the most recent ones). */
    async loadOlder() {
      if (this.loading || this.floor === 0 || all.length >= KEEP) return;
      this.loading = true;
      try {
        const below = (this.floor ?? relay.lastEventId) + 1; // ids below this are wanted
        const since = Math.max(0, below - 1 - WINDOW);
        const page = await relay.api("GET", "/v1/events", { query: { since, limit: WINDOW } });
        const older = page.filter((event) => event.id < below && !seen.has(event.id));
        for (const event of older) seen.add(event.id);
        this.floor = since;
        if (older.length) {
          all = keep(all.concat(older.reverse()).sort((a, b) => b.id - a.id), seen);
          this.compute();
        }
      } finally {
        this.loading = false;
      }
    },

    onScrollFeed() {
      this.onScroll();
      if (this.started && this.nearEnd(this.shown)) {
        relay.whenReady(() => this.loadOlder());
      }
    },

    togglePause() {
      this.paused = !this.paused;
      if (!this.paused && pending.length) {
        const newer = pending;
        pending = [];
        this.held = 0;
        this.merge(newer);
      }
    },

    /** `shown` and `total` from the events kept and the filters. */
    compute() {
      this.total = all.length;
      this.shown = all.filter(this.predicate());
    },

    /** Whether an event passes the filters: its kind's family, an agent it names
     * (exactly), and text anywhere in its id, kind, agent, summary or data. */
    predicate() {
      const f = Alpine.raw(this.filter);
      const family = f.kind ? `${f.kind}.` : "";
      const who = f.agent.trim();
      const text = f.text.trim().toLowerCase();
      return (event) =>
        event.kind.startsWith(family) &&
        (!who || involved(event).includes(who)) &&
        (!text || haystack(event).includes(text));
    },

    /** The agents named in the kept events, sorted: the agent field's suggestions,
     * gathered when it gets the focus. */
    suggest() {
      const found = new Set();
      for (const event of all) for (const name of involved(event)) found.add(name);
      this.names = [...found].sort();
    },

    open(event) {
      this.selected = this.selected && this.selected.id === event.id ? null : event;
    },

    json(event) {
      return json(event, 2);
    },
  };
}

/** The lower-cased text an event is searched in (made once an event). */
const haystacks = new WeakMap();
function haystack(event) {
  let text = haystacks.get(event);
  if (text === undefined) {
    text = [event.id, event.kind, event.agent_id, summary(event), json(event.data)]
      .join("\n")
      .toLowerCase();
    haystacks.set(event, text);
  }
  return text;
}

/** At most KEEP events (the newest first); the ids of those let go leave `seen`. */
function keep(events, seen) {
  if (events.length <= KEEP) return events;
  for (const event of events.slice(KEEP)) seen.delete(event.id);
  return events.slice(0, KEEP);
}

function json(value, indent) {
  return JSON.stringify(value, null, indent);
}

/** The agents an event is by or about: its agent, recipients, holder, pair. */
export function involved(event) {
  const d = event.data || {};
  const names = [event.agent_id, d.to, d.inviter, d.invitee, d.assignee, d.holder, d.peer];
  if (Array.isArray(d.recipients)) names.push(...d.recipients);
  return [...new Set(names.filter((name) => typeof name === "string" && name))];
}

/** One line saying what happened, from the event's kind and data. */
export function summary(event) {
  const d = event.data || {};
  switch (event.kind) {
    case "message.sent": {
      const message = d.message || {};
      const text = d.subject || String(message.body || "").split("\n")[0];
      const channel = d.channel ? ` in ${d.channel}` : "";
      return `#${d.message_id} → ${d.to}${channel}${text ? `: ${text}` : ""}`;
    }
    case "message.delivered":
    case "message.read":
      return `${(d.message_ids || []).map((id) => `#${id}`).join(", ")} via ${d.via}`;
    case "task.created":
      return `task #${d.task_id} “${d.title}” for ${d.target}`;
    case "task.claimed":
    case "task.renewed":
      return `task #${d.task_id}, lease until ${seconds(d.lease_expires_at)}`;
    case "task.updated": {
      const progress = d.progress === null || d.progress === undefined ? "" : ` ${d.progress}%`;
      return `task #${d.task_id} ${d.previous} → ${d.status}${progress}${d.note ? `: ${d.note}` : ""}`;
    }
    default:
      return scalars(d);
  }
}

/** "key: value · …" over the data's plain fields (lists of plain values joined). */
function scalars(data) {
  const parts = [];
  for (const [key, value] of Object.entries(data)) {
    if (value === null || value === undefined || value === "") continue;
    if (Array.isArray(value)) {
      if (value.length && value.every((item) => typeof item !== "object")) {
        parts.push(`${key}: ${value.join(", ")}`);
      }
    } else if (key.endsWith("_at") && typeof value === "number") {
      parts.push(`${key}: ${seconds(value)}`);
    } else if (typeof value !== "object") {
      parts.push(`${key}: ${value}`);
    }
  }
  return parts.join(" · ");
}

/** The local time of a Unix time in seconds (leases carry those), to the second. */
function seconds(unix) {
  return typeof unix === "number" ? new Date(unix * 1000).toLocaleTimeString() : String(unix);
}

/** Where an event leads: its agent, its message's thread, its task ({href, text}). */
export function links(event) {
  const d = event.data || {};
  const found = [];
  for (const name of involved(event)) {
    found.push({ href: `#/agents/${encodeURIComponent(name)}`, text: `agent ${name}` });
  }
  const thread = d.thread_id ?? d.message_id;
  if (thread !== null && thread !== undefined) {
    found.push({ href: `#/messages/${thread}`, text: `thread #${thread}` });
  }
  if (d.task_id !== null && d.task_id !== undefined) {
    found.push({ href: `#/tasks/${d.task_id}`, text: `task #${d.task_id}` });
  }
  return found;
}
