// The dashboard's entry point: the relay store, one Alpine component per view, start.
// No build step: these are ES modules served as they are (see dashboard.py).
import Alpine from "./vendor/alpine-3.17.5.esm.min.js";
import { createRelay } from "./relay.js";
import { agentsView } from "./views/agents.js";
import { eventsView } from "./views/events.js";
import { messagesView } from "./views/messages.js";
import { tasksView } from "./views/tasks.js";

const THEME_KEY = "relaybus.theme";

Alpine.store("relay", createRelay());
const relay = Alpine.store("relay");
Alpine.store("theme", {
  value: localStorage.getItem(THEME_KEY) || "auto",
  cycle() {
    this.value = { auto: "light", light: "dark", dark: "auto" }[this.value];
    localStorage.setItem(THEME_KEY, this.value);
    document.documentElement.dataset.theme = this.value;
  },
});
document.documentElement.dataset.theme = Alpine.store("theme").value;

Alpine.data("agentsView", () => agentsView(relay));
Alpine.data("messagesView", () => messagesView(relay));
Alpine.data("tasksView", () => tasksView(relay));
Alpine.data("eventsView", () => eventsView(relay));

window.Alpine = Alpine; // for the browser's console, and the tests
window.relay = relay;
Alpine.start();
relay.start();
