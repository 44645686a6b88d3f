// Agents: every agent of the workspace with its presence, live; filter by text, tag,
// capability, channel and status; edit an agent's label and tags (an admin edits any;
// an agent token edits its own agent: the server decides).
//
// The list is held outside Alpine's reactivity (`all`, sorted by id, changed in place
// by `put`); `shown` (the filtered list) and the filters' options are computed once
// per change, not on every read: with 1,000 agents, reading them through reactive
// proxies on each render cost more than the render.
import Alpine from "../vendor/alpine-3.17.5.esm.min.js";
import { ago, list, matches } from "../format.js";
import { virtualList } from "../virtual.js";

export function agentsView(relay) {
  let all = []; // every agent, sorted by id (not reactive)
  return {
    ...virtualList(36),
    total: 0,
    shown: [],
    options: { tags: [], capabilities: [], channels: [] },
    loaded: false,
    filter: { text: "", status: "", tag: "", capability: "", channel: "" },
    editing: null, // {id, label, tags}
    now: Date.now(),
    ago,
    list,

    async init() {
      relay.on("agent.", (event) => this.refresh(event.agent_id || event.data.agent_id, event));
      this.$watch("filter", () => this.compute());
      setInterval(() => (this.now = Date.now()), 5000);
      await relay.whenReady(() => this.load(), "agents");
    },

    async load() {
      all = await relay.api("GET", "/v1/agents"); // sorted by id
      this.compute(true);
      this.loaded = true;
      // The first draw, for bench/dashboard.py (a no-op after the first load).
      this.$nextTick(() => {
        performance.mark("relaybus:agents-rendered");
        relay.drew();
      });
    },

    /** One agent changed: fetch it again (or drop it when it unregistered). */
    async refresh(id, event) {
      if (!id) return;
      let agent = null;
      if (event.kind !== "agent.unregistered") {
        try {
          agent = await relay.api("GET", `/v1/agents/${encodeURIComponent(id)}`);
        } catch (error) {
          if (error.status !== 404) throw error;
        }
      }
      this.put(id, agent);
    },

    /** `agent` in the list in place of the agent `id` (null: removed). */
    put(id, agent) {
      const at = sortedIndex(all, id);
      const found = at < all.length && all[at].id === id;
      const before = found ? all[at] : null;
      if (agent && found) all[at] = agent;
      else if (agent) all.splice(at, 0, agent);
      else if (found) all.splice(at, 1);
      else return;
      const names = (a) => (a ? [a.tags, a.capabilities, a.channels].join("|") : "");
      this.compute(names(before) !== names(agent));
    },

    /** `shown` from the filters, and (`options`) the filters' choices. */
    compute(options = false) {
      const f = Alpine.raw(this.filter);
      const text = f.text.trim().toLowerCase();
      this.total = all.length;
      this.shown = all.filter(
        (agent) =>
          (!f.status || agent.status === f.status) &&
          (!f.tag || agent.tags.includes(f.tag)) &&
          (!f.capability || agent.capabilities.includes(f.capability)) &&
          (!f.channel || agent.channels.includes(f.channel)) &&
          (!text || matches(text, agent.id, agent.label, list(agent.tags), list(agent.capabilities))),
      );
      if (!options) return;
      const seen = { tags: new Set(), capabilities: new Set(), channels: new Set() };
      for (const agent of all) {
        for (const field in seen) for (const value of agent[field]) seen[field].add(value);
      }
      for (const field in seen) this.options[field] = [...seen[field]].sort();
    },

    edit(agent) {
      this.editing = { id: agent.id, label: agent.label || "", tags: list(agent.tags) };
    },

    async save() {
      const edit = this.editing;
      const tags = edit.tags.split(",").map((tag) => tag.trim()).filter(Boolean);
      try {
        const agent = await relay.api("PATCH", `/v1/agents/${encodeURIComponent(edit.id)}`, {
          body: { label: edit.label.trim() || null, tags },
        });
        this.put(agent.id, agent);
        this.editing = null;
      } catch (error) {
        relay.flash(error.message);
      }
    },
  };
}

/** Where `id` is, or would go, in `agents` (sorted by id): a binary search. */
function sortedIndex(agents, id) {
  let low = 0;
  let high = agents.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (agents[middle].id < id) low = middle + 1;
    else high = middle;
  }
  return low;
}
