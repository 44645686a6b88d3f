// Tasks: the board, one column per status (models.TaskStatus), live.
//
// - Loaded a page per column (`GET /v1/tasks?status=S&limit=N`, older pages with
//   `before=` the lowest id seen), so a workspace with 100,000 finished tasks costs a
//   page; each column draws at most `shown[S]` cards and offers "N more".
// - Live: a `task.*` event refetches that task (`GET /v1/tasks/{id}`; 404: it left this
//   token's view) and its card moves; one fetch per task at a time, the last one wins.
// - A held task whose lease passed is fetched again: the server's sweep releases it
//   first (the read sweeps), the `task.released` event follows and it moves to open.
// - Filters (agent = holder or creator, channel, text in title and body, status) apply
//   to what is loaded (the text also matches the target, e.g. `tag:backend`). `#/tasks/ID` opens a task's details and history.
// - Create a task (`POST /v1/tasks`); an admin picks the creating agent or leaves it
//   empty (the operator), and may release a stuck lease (`POST …/release` without an
//   agent: "released by operator").
import { ago, clock, countdown, matches } from "../format.js";

export const COLUMNS = [
  ["open", "Open"],
  ["claimed", "Claimed"],
  ["in_progress", "In progress"],
  ["blocked", "Blocked"],
  ["done", "Done"],
  ["failed", "Failed"],
  ["canceled", "Canceled"],
];
const FINISHED = new Set(["done", "failed", "canceled"]);
const HELD = new Set(["claimed", "in_progress", "blocked"]);
const PRIORITY = { urgent: 0, high: 1, normal: 2, low: 3 };
/** Cards a column draws before "N more"; tasks a page fetches (active, finished). */
const CAP = 40;
const PAGE = { active: 200, finished: 40 };

/** Active columns: most urgent, then oldest waiting first; finished: most recent first. */
function order(status) {
  if (FINISHED.has(status)) return (a, b) => (a.updated_at < b.updated_at ? 1 : a.updated_at > b.updated_at ? -1 : b.id - a.id);
  return (a, b) => (PRIORITY[a.priority] ?? 2) - (PRIORITY[b.priority] ?? 2) || a.id - b.id;
}

function emptyForm() {
  return { title: "", body: "", target: "", channel: "", priority: "normal", agent: "" };
}

export function tasksView(relay) {
  const byId = new Map(); // id -> task (not reactive: `lanes` is rebuilt from it)
  const pending = new Map(); // id -> whether another fetch is wanted after this one
  const poked = new Set(); // "id@lease": lapsed leases already fetched again
  const columns = COLUMNS.map(([status, title]) => ({ status, title }));
  const perColumn = (value) => Object.fromEntries(COLUMNS.map(([status]) => [status, value]));
  return {
    grouped: perColumn([]), // status -> tasks, sorted
    shown: perColumn(CAP), // status -> cards drawn
    more: perColumn(false), // status -> the server may hold older ones
    cursor: perColumn(null), // status -> lowest id fetched (the next page is before it)
    loaded: false,
    total: 0,
    filter: { agent: "", channel: "", text: "", status: "" },
    selected: null, // the task whose details are open
    history: [],
    creating: false,
    form: emptyForm(),
    busy: false,
    said: "", // what the last action did (a polite live region)
    now: Date.now(),
    COLUMNS,
    ago,
    clock,
    countdown,

    async init() {
      relay.on("task.", (event) => this.refresh(event.data.task_id));
      setInterval(() => this.tick(), 1000);
      this.$watch("$store.relay.route", () => this.follow());
      await relay.whenReady(async () => {
        await this.load();
        this.$nextTick(() => relay.drew());
        await this.follow();
      }, "tasks");
    },

    /** The first page of every column, drawn once all have come. */
    async load() {
      const pages = await Promise.all(columns.map(({ status }) => this.fetchPage(status)));
      pages.forEach((page) => this.keep(page));
      this.rebuild();
      this.loaded = true;
    },

    /** One more page of `status`'s column (older than what it has). */
    async page(status) {
      this.keep(await this.fetchPage(status));
      this.rebuild();
    },

    async fetchPage(status) {
      const limit = FINISHED.has(status) ? PAGE.finished : PAGE.active;
      const found = await relay.api("GET", "/v1/tasks", {
        query: { status, limit, before: this.cursor[status] },
      });
      return { status, limit, found };
    },

    keep({ status, limit, found }) {
      for (const task of found) if (!byId.has(task.id)) byId.set(task.id, task);
      if (found.length) this.cursor[status] = found[found.length - 1].id;
      this.more[status] = found.length === limit;
    },

    /** One task changed: fetch it again (one fetch per task at a time). */
    async refresh(id) {
      if (!Number.isInteger(id)) return;
      if (pending.has(id)) {
        pending.set(id, true);
        return;
      }
      pending.set(id, false);
      try {
        byId.set(id, await relay.api("GET", `/v1/tasks/${id}`));
        if (this.selected && this.selected.id === id) await this.details(id);
      } catch (error) {
        if (error.status === 404) byId.delete(id); // gone, or no longer this token's
        else relay.flash(error.message);
      }
      const again = pending.get(id);
      pending.delete(id);
      this.rebuild();
      if (again) await this.refresh(id);
    },

    rebuild() {
      const grouped = perColumn(null);
      for (const status in grouped) grouped[status] = [];
      for (const task of byId.values()) (grouped[task.status] ||= []).push(task);
      for (const status in grouped) grouped[status].sort(order(status));
      this.grouped = grouped;
      this.total = byId.size;
    },

    /** Each second: countdowns tick; a held task whose lease lapsed is fetched again. */
    tick() {
      this.now = Date.now();
      for (const status of HELD) {
        for (const task of this.grouped[status] || []) {
          const key = `${task.id}@${task.lease_expires_at}`;
          if (!task.lease_expires_at || Date.parse(task.lease_expires_at) > this.now) continue;
          if (poked.has(key)) continue;
          poked.add(key);
          this.refresh(task.id);
        }
      }
    },

    /** The columns as drawn: filtered, each with its cards (at most `shown`). */
    get lanes() {
      const f = this.filter;
      const text = f.text.trim().toLowerCase();
      const keep = (task) =>
        (!f.agent || task.assignee === f.agent || task.creator === f.agent) &&
        (!f.channel || task.channel === f.channel) &&
        matches(text, task.title, task.body, task.target);
      return columns
        .filter((column) => !f.status || column.status === f.status)
        .map((column) => {
          const tasks = this.grouped[column.status].filter(keep);
          const cards = tasks.slice(0, this.shown[column.status]);
          return { ...column, count: tasks.length, cards, hidden: tasks.length - cards.length };
        });
    },

    /** Every agent (holder or creator) or channel among the loaded tasks, sorted. */
    values(field) {
      const seen = new Set();
      for (const tasks of Object.values(this.grouped)) {
        for (const task of tasks) {
          if (field === "agent") {
            if (task.assignee) seen.add(task.assignee);
            if (task.creator) seen.add(task.creator);
          } else if (task[field]) seen.add(task[field]);
        }
      }
      return [...seen].sort();
    },

    moreText(lane) {
      if (lane.hidden) return `${lane.hidden}${this.more[lane.status] ? "+" : ""} more`;
      return "Load older";
    },

    async showMore(lane) {
      if (!lane.hidden) await this.run(() => this.page(lane.status));
      this.shown[lane.status] += CAP;
    },

    /** A safe link for a task's external URL (http and https only). */
    href(url) {
      return /^https?:\/\//i.test(url || "") ? url : null;
    },

    origin(task) {
      return [task.source, task.integration && `via ${task.integration}`].filter(Boolean).join(" ");
    },

    // -- details (#/tasks/ID) ------------------------------------------------------------

    async follow() {
      const route = relay.route;
      if (route[0] !== "tasks" || !route[1]) {
        const was = this.selected;
        this.selected = null;
        // Back to the card that opened the details (keyboard users keep their place).
        const link = was && this.$root.querySelector(`[data-task="${was.id}"] a.title`);
        if (link && route[0] === "tasks") link.focus();
        return;
      }
      await this.run(() => this.details(Number(route[1])));
      this.$nextTick(() => this.$refs.closeDetails && this.$refs.closeDetails.focus());
    },

    async details(id) {
      const [task, history] = await Promise.all([
        relay.api("GET", `/v1/tasks/${id}`),
        relay.api("GET", `/v1/tasks/${id}/history`),
      ]);
      this.selected = task;
      this.history = history;
    },

    close() {
      location.hash = "#/tasks";
    },

    canRelease(task) {
      return relay.admin && HELD.has(task.status);
    },

    async release(task) {
      await this.run(async () => {
        const released = await relay.api("POST", `/v1/tasks/${task.id}/release`, { body: {} });
        byId.set(released.id, released);
        this.rebuild();
        await this.details(released.id);
      });
    },

    // -- create ---------------------------------------------------------------------------

    get admin() {
      return relay.admin;
    },

    async create() {
      const f = this.form;
      const body = {
        title: f.title.trim(),
        target: f.target.trim(),
        priority: f.priority,
        body: f.body.trim() || null,
        channel: f.channel.trim() || null,
      };
      if (relay.admin && f.agent.trim()) body.agent_id = f.agent.trim();
      await this.run(async () => {
        const task = await relay.api("POST", "/v1/tasks", { body });
        byId.set(task.id, task);
        this.rebuild();
        this.form = emptyForm();
        this.creating = false;
        this.said = `Opened task #${task.id}.`;
      });
    },

    /** Run `action`, showing an error as the page's notice. */
    async run(action) {
      this.busy = true;
      try {
        await action();
      } catch (error) {
        relay.flash(error.message);
      } finally {
        this.busy = false;
      }
    },
  };
}
