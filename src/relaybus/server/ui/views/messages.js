// Conversations and threads (to be completed: listing, receipts, send and reply).
export function messagesView(relay) {
  return {
    messages: [],

    init() {
      relay.on("message.sent", (event) => {
        if (event.data.message) this.messages.unshift(event.data.message);
      });
    },
  };
}
