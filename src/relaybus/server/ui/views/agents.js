// Agents: every agent of the workspace with its presence, live; filter by text, tag,
// capability, channel and status; edit an agent's label and tags (an admin edits any;
// an agent token edits its own agent: the server decides).
import { ago, list, matches } from "../format.js";
import { virtualList } from "../virtual.js";

export function agentsView(relay) {
  return {
    ...virtualList(36),
    agents: [],
    byId: new Map(),
    loaded: false,
    filter: { text: "", status: "", tag: "", capability: "", channel: "" },
    editing: null, // {id, label, tags}
    now: Date.now(),
    ago,
    list,

    async init() {
      relay.on("agent.", (event) => this.refresh(event.agent_id || event.data.agent_id, event));
      setInterval(() => (this.now = Date.now()), 5000);
      await relay.whenReady(() => this.load());
    },

    async load() {
      const agents = await relay.api("GET", "/v1/agents");
      this.byId = new Map(agents.map((agent) => [agent.id, agent]));
      this.agents = agents;
      this.loaded = true;
      // The first draw, for bench/dashboard.py (a no-op after the first load).
      this.$nextTick(() => performance.mark("relaybus:agents-rendered"));
    },

    /** One agent changed: fetch it again (or drop it when it unregistered). */
    async refresh(id, event) {
      if (!id) return;
      if (event.kind === "agent.unregistered") {
        this.byId.delete(id);
      } else {
        try {
          this.byId.set(id, await relay.api("GET", `/v1/agents/${encodeURIComponent(id)}`));
        } catch (error) {
          if (error.status !== 404) throw error;
          this.byId.delete(id);
        }
      }
      this.agents = [...this.byId.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
    },

    get shown() {
      const f = this.filter;
      const text = f.text.trim().toLowerCase();
      return this.agents.filter(
        (agent) =>
          (!f.status || agent.status === f.status) &&
          (!f.tag || agent.tags.includes(f.tag)) &&
          (!f.capability || agent.capabilities.includes(f.capability)) &&
          (!f.channel || agent.channels.includes(f.channel)) &&
          matches(text, agent.id, agent.label, list(agent.tags), list(agent.capabilities)),
      );
    },

    /** Every value of `field` (tags, capabilities, channels) among the agents, sorted. */
    values(field) {
      const seen = new Set();
      for (const agent of this.agents) for (const value of agent[field]) seen.add(value);
      return [...seen].sort();
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
        this.byId.set(agent.id, agent);
        this.agents = [...this.byId.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
        this.editing = null;
      } catch (error) {
        relay.flash(error.message);
      }
    },
  };
}
