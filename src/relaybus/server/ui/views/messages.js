// Messages: the workspace's messages (an agent token: those its agent sent or received,
// as the server's visibility rule gives them), newest first, paged from the server as
// the list scrolls (`before=`), filtered on the server (agent, channel, tag, text `q`);
// live: `message.sent` prepends when it matches the filters, `message.delivered` and
// `message.read` move the receipts. `#/messages/ID` opens the thread of message ID with
// each message's per-recipient receipts (state, times, path). Send, broadcast and reply
// from the page; an admin picks the sending agent, an agent token sends as its agent.
import { ago, clock } from "../format.js";
import { virtualList } from "../virtual.js";

const PAGE = 100;
const RANK = { queued: 0, delivered: 1, read: 2 };

export function messagesView(relay) {
  return {
    ...virtualList(36),
    messages: [],
    ids: new Set(),
    receipts: {}, // message id -> {agent id -> state}
    filter: { agent: "", channel: "", tag: "", text: "" },
    loaded: false,
    loading: false,
    exhausted: false,
    generation: 0,
    agentIds: [],
    now: Date.now(),
    // The open thread (#/messages/ID).
    thread: { id: null, messages: [], receipts: {}, error: "", loading: false },
    compose: { open: false, sender: "", to: "", channel: "", subject: "", body: "", error: "", sending: false },
    reply: { body: "", error: "", sending: false },
    ago,
    clock,

    async init() {
      relay.on("message.sent", (event) => {
        // The frame carries the recipients once, in the event's data, not in the message.
        const m = event.data.message;
        if (m) this.sent({ ...m, recipients: event.data.recipients || [] });
      });
      relay.on("message.delivered", (event) => this.moved(event, "delivered"));
      relay.on("message.read", (event) => this.moved(event, "read"));
      setInterval(() => (this.now = Date.now()), 5000);
      this.$watch("filter", () => this.reload());
      this.$watch("$store.relay.route", () => this.openRoute());
      await relay.whenReady(async () => {
        await this.reload(() => {
          // The first page drawn (its receipts follow), for bench/dashboard.py.
          this.$nextTick(() => {
            performance.mark("relaybus:messages-rendered");
            relay.drew();
          });
        });
        this.openRoute();
      }, "messages");
    },

    /** The agent ids the agent fields suggest: fetched when one is first focused (not
     * on load, where the agents view reads the same list). */
    async suggestAgents() {
      if (this.agentIds.length || this._suggesting) return;
      this._suggesting = true;
      try {
        const agents = await relay.api("GET", "/v1/agents");
        this.agentIds = agents.map((agent) => agent.id).sort();
      } catch (error) {
        this._suggesting = false;
      }
    },

    get me() {
      return relay.me && relay.me.agent;
    },

    query(before) {
      const f = this.filter;
      return {
        participant: f.agent.trim(),
        channel: f.channel.trim(),
        tag: f.tag.trim(),
        q: f.text.trim(),
        before,
        limit: PAGE,
      };
    },

    /** The filters changed (or the first load): the newest page again. */
    async reload(drawn = null) {
      const generation = ++this.generation;
      this.loading = true;
      try {
        const page = await relay.api("GET", "/v1/messages", { query: this.query() });
        if (generation !== this.generation) return; // a newer load has started
        this.messages = page;
        this.ids = new Set(page.map((m) => m.id));
        this.receipts = {};
        this.exhausted = page.length < PAGE;
        this.loaded = true;
        if (this.$refs.scroller) this.$refs.scroller.scrollTop = 0;
        this.scrollTop = 0;
        if (drawn) drawn();
        await this.loadReceipts(page, generation);
      } catch (error) {
        if (generation === this.generation) {
          this.messages = [];
          this.loaded = true;
          relay.flash(error.message);
        }
      } finally {
        if (generation === this.generation) this.loading = false;
      }
    },

    /** The next older page, when the list is scrolled near its end. */
    async more() {
      if (this.loading || this.exhausted || !this.messages.length) return;
      if (!this.nearEnd(this.messages, 30)) return;
      const generation = this.generation;
      this.loading = true;
      try {
        const before = this.messages[this.messages.length - 1].id;
        const page = await relay.api("GET", "/v1/messages", { query: this.query(before) });
        if (generation !== this.generation) return;
        const fresh = page.filter((m) => !this.ids.has(m.id));
        for (const m of fresh) this.ids.add(m.id);
        this.messages = this.messages.concat(fresh);
        this.exhausted = page.length < PAGE;
        await this.loadReceipts(fresh, generation);
      } catch (error) {
        relay.flash(error.message);
      } finally {
        if (generation === this.generation) this.loading = false;
      }
    },

    async loadReceipts(page, generation) {
      if (!page.length) return;
      const found = await relay.api("GET", "/v1/messages/receipts", {
        query: { ids: page.map((m) => m.id) },
      });
      if (generation !== this.generation) return;
      for (const m of page) this.receipts[m.id] = this.receipts[m.id] || {};
      for (const d of found) this.receipts[d.message_id][d.agent_id] = d.state;
    },

    onListScroll() {
      this.onScroll();
      this.more();
    },

    matches(m) {
      const f = this.filter;
      const agent = f.agent.trim();
      const channel = f.channel.trim();
      const tag = f.tag.trim();
      const text = f.text.trim().toLowerCase();
      return (
        (!agent || m.sender === agent || m.recipients.includes(agent)) &&
        (!channel || m.channel === channel) &&
        (!tag || m.to === `tag:${tag}`) &&
        (!text || `${m.subject || ""}\n${m.body}`.toLowerCase().includes(text))
      );
    },

    /** A live `message.sent`: first in the list when it matches; into the open thread. */
    sent(m) {
      if (!m) return;
      const queued = Object.fromEntries(m.recipients.map((agent) => [agent, "queued"]));
      if (this.loaded && !this.ids.has(m.id) && this.matches(m)) {
        this.ids.add(m.id);
        this.receipts[m.id] = { ...queued, ...(this.receipts[m.id] || {}) };
        this.messages = [m, ...this.messages];
      }
      const open = this.thread.messages;
      if (open.length && m.thread_id === open[0].thread_id && !open.some((o) => o.id === m.id)) {
        this.thread.messages = [...open, m];
        this.refreshThreadReceipts();
      }
    },

    /** A live receipt: one agent's deliveries of some messages moved on. */
    moved(event, state) {
      const agent = event.agent_id;
      const ids = (event.data && event.data.message_ids) || [];
      for (const id of ids) {
        const known = this.receipts[id];
        if (known && agent && RANK[state] > RANK[known[agent] || "queued"]) known[agent] = state;
      }
      if (this.thread.messages.some((m) => ids.includes(m.id))) this.refreshThreadReceipts();
    },

    /** "2/3 read" (or delivered/queued counts in the title). */
    summary(m) {
      const total = m.recipients.length;
      if (!total) return "no recipients";
      if (!this.receipts[m.id]) return ""; // not loaded yet
      const states = Object.values(this.receipts[m.id]);
      const read = states.filter((s) => s === "read").length;
      return `${read}/${total} read`;
    },

    detail(m) {
      const states = Object.values(this.receipts[m.id] || {});
      const count = (s) => states.filter((x) => x === s).length;
      return `${count("queued")} queued, ${count("delivered")} delivered, ${count("read")} read`;
    },

    /** The body's first line (the subject, if any, is shown before it). */
    firstLine(m) {
      return m.body.split("\n", 1)[0];
    },

    threadHref(m) {
      // An admin sees every root; an agent may not see its thread's root: its own message.
      return `#/messages/${relay.admin ? m.thread_id : m.id}`;
    },

    // -- the thread ---------------------------------------------------------------

    openRoute() {
      const [view, id] = relay.route;
      if (view !== "messages" || !id) {
        this.thread = { id: null, messages: [], receipts: {}, error: "", loading: false };
        return;
      }
      this.openThread(id);
    },

    async openThread(id) {
      this.thread = { id, messages: [], receipts: {}, error: "", loading: true };
      this.reply = { body: "", error: "", sending: false };
      this.compose.open = false; // the thread has its own reply form
      if (!/^\d+$/.test(id)) {
        this.thread.error = `"${id}" is not a message id.`;
        this.thread.loading = false;
        return;
      }
      try {
        const found = await relay.api("GET", `/v1/messages/${id}/thread`);
        if (this.thread.id !== id) return;
        this.thread.messages = found;
        await this.refreshThreadReceipts();
        this.$nextTick(() => this.$refs.threadTitle && this.$refs.threadTitle.focus());
      } catch (error) {
        if (this.thread.id === id) this.thread.error = error.message;
      } finally {
        if (this.thread.id === id) this.thread.loading = false;
      }
    },

    async refreshThreadReceipts() {
      const id = this.thread.id;
      const ids = this.thread.messages.map((m) => m.id);
      if (!ids.length) return;
      const found = await relay.api("GET", "/v1/messages/receipts", { query: { ids } });
      if (this.thread.id !== id) return;
      const by = {};
      for (const d of found) (by[d.message_id] = by[d.message_id] || []).push(d);
      this.thread.receipts = by;
    },

    // -- sending ------------------------------------------------------------------

    async post(body) {
      if (!this.me) body.sender = this.compose.sender.trim() || undefined;
      return relay.api("POST", "/v1/messages", { body });
    },

    async send(broadcast = false) {
      const c = this.compose;
      c.error = "";
      c.sending = true;
      try {
        const fields = { to: broadcast ? "broadcast" : c.to.trim(), body: c.body };
        if (c.channel.trim()) fields.channel = c.channel.trim();
        if (c.subject.trim()) fields.subject = c.subject.trim();
        const m = await this.post(fields);
        c.body = "";
        c.subject = "";
        relay.notice = "";
        this.sent(m); // the stream brings it too; shown once
        c.open = false;
      } catch (error) {
        c.error = error.message;
      } finally {
        c.sending = false;
      }
    },

    async sendReply() {
      const r = this.reply;
      const last = this.thread.messages[this.thread.messages.length - 1];
      if (!last) return;
      r.error = "";
      r.sending = true;
      try {
        const m = await this.post({ reply_to: last.id, body: r.body });
        r.body = "";
        this.sent(m);
      } catch (error) {
        r.error = error.message;
      } finally {
        r.sending = false;
      }
    },
  };
}
