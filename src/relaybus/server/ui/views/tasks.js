// The task board (to be completed: columns by status, holder, lease, progress, history).
export function tasksView(relay) {
  return {
    tasks: [],

    async init() {
      await relay.whenReady(async () => (this.tasks = await relay.api("GET", "/v1/tasks")));
    },
  };
}
