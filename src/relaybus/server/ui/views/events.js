// The live event feed (to be completed: filters by kind, agent and text).
export function eventsView(relay) {
  return {
    events: [],

    init() {
      relay.on("", (event) => {
        this.events.unshift(event);
        if (this.events.length > 1000) this.events.pop();
      });
    },
  };
}
