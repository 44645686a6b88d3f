// A small agent-relay session held open: agents connected to a running daemon, a few messages
// sent between them, through the package's own client library (dist/wrapper/client.js), so the
// peer's `agents` and `history` commands have something to show while they are timed.
//
// Usage: node agent_relay_session.mjs PACKAGE_DIR SOCKET_PATH CONFIG_JSON
//   CONFIG_JSON: {"agents": ["alice", "bob"], "messages": 10, "timeout_s": 30}
// Connects every agent, then sends `messages` messages from the first agent to the second, one
// at a time, each waited for until the second has it (the daemon stores a message before it
// delivers it). Prints "ready" on stdout, keeps the agents connected (their heartbeats keep them
// listed as online) until stdin closes, then disconnects them and exits.
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [packageDir, socketPath, configJson] = process.argv.slice(2);
const config = JSON.parse(configJson);
const clientUrl = pathToFileURL(path.join(packageDir, 'dist', 'wrapper', 'client.js')).href;
const { RelayClient } = await import(clientUrl);

// RelayClient logs every delivery with console.log; stdout carries only "ready".
const write = process.stdout.write.bind(process.stdout);
console.log = () => {};

function withTimeout(promise, what) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), config.timeout_s * 1000);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

const clients = [];
for (const name of config.agents) {
  const client = new RelayClient({ socketPath, agentName: name, quiet: true, reconnect: false });
  await withTimeout(client.connect(), `connecting ${name}`);
  clients.push(client);
}
const [sender, receiver] = clients;
let received = 0;
let waiting = null;
receiver.onMessage = () => {
  received += 1;
  if (waiting) waiting();
};
for (let i = 0; i < config.messages; i++) {
  const arrived = new Promise((resolve) => {
    waiting = () => {
      if (received > i) {
        waiting = null;
        resolve();
      }
    };
  });
  if (!sender.sendMessage(receiver.agentName, `message ${i + 1} from ${sender.agentName}`)) {
    throw new Error('send refused');
  }
  await withTimeout(arrived, `message ${i + 1}`);
}
write('ready\n');
process.stdin.resume();
process.stdin.on('end', () => {
  for (const client of clients) client.destroy();
  process.exit(0);
});
