// Two-agent workloads against a running agent-relay daemon, through the package's own client
// library (dist/wrapper/client.js: RelayClient over the daemon's Unix socket).
//
// Usage: node agent_relay_driver.mjs PACKAGE_DIR SOCKET_PATH CONFIG_JSON
//   CONFIG_JSON: {"sequential": N, "pipelined": N, "rounds": R, "warmup": N, "body_bytes": 64,
//                 "timeout_s": 30}
// Prints one JSON line on stdout:
//   {"rounds": [{"sequential_ms": [..N latencies..], "sequential_s": S,
//                "pipelined_s": S, "pipelined_received": n}, ...]}
// Each part of each round uses a fresh pair of agents: the daemon rate-limits each sender (token
// bucket, 500/s sustained, 1,000 burst) and silently drops what is over, so N <= 1,000.
// Both agents live in this process, as on the relaybus side of the comparison.
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [packageDir, socketPath, configJson] = process.argv.slice(2);
const config = JSON.parse(configJson);
const clientUrl = pathToFileURL(path.join(packageDir, 'dist', 'wrapper', 'client.js')).href;
const { RelayClient } = await import(clientUrl);

// RelayClient logs every delivery with console.log regardless of `quiet`; keep stdout for the
// result and do not let terminal/pipe writes count against the peer.
const write = process.stdout.write.bind(process.stdout);
console.log = () => {};

const body = 'x'.repeat(config.body_bytes);
const now = () => Number(process.hrtime.bigint()) / 1e6; // milliseconds

async function connect(name) {
  const client = new RelayClient({ socketPath, agentName: name, quiet: true, reconnect: false });
  await client.connect();
  return client;
}

function withTimeout(promise, what) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), config.timeout_s * 1000);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

async function pair(name) {
  const alice = await connect(`bench-a-${process.pid}-${name}`);
  const bob = await connect(`bench-b-${process.pid}-${name}`);
  const inbox = { received: 0, waiting: null };
  bob.onMessage = () => {
    inbox.received += 1;
    if (inbox.waiting) inbox.waiting();
  };
  const arrived = (count) =>
    new Promise((resolve) => {
      if (inbox.received >= count) return resolve();
      inbox.waiting = () => {
        if (inbox.received >= count) {
          inbox.waiting = null;
          resolve();
        }
      };
    });
  const close = () => {
    alice.destroy();
    bob.destroy();
  };
  return { alice, bob, inbox, arrived, close };
}

async function round(index) {
  // Sequential: send one, wait until bob has it, send the next.
  const seq = await pair(`s${index}`);
  const latencies = [];
  const seqStart = now();
  for (let i = 0; i < config.sequential; i++) {
    const t0 = now();
    const next = seq.arrived(seq.inbox.received + 1);
    if (!seq.alice.sendMessage(seq.bob.agentName, body)) throw new Error('send refused');
    await withTimeout(next, `sequential message ${i}`);
    latencies.push(now() - t0);
  }
  const sequentialS = (now() - seqStart) / 1000;
  seq.close();

  // Pipelined: send all without waiting, until bob has them all.
  const pipe = await pair(`p${index}`);
  const pipeStart = now();
  const all = pipe.arrived(config.pipelined);
  for (let i = 0; i < config.pipelined; i++) {
    if (!pipe.alice.sendMessage(pipe.bob.agentName, body)) throw new Error('send refused');
  }
  await withTimeout(all, `pipelined (${pipe.inbox.received}/${config.pipelined} arrived)`);
  const pipelinedS = (now() - pipeStart) / 1000;
  pipe.close();
  return {
    sequential_ms: latencies,
    sequential_s: sequentialS,
    pipelined_s: pipelinedS,
    pipelined_received: pipe.inbox.received,
  };
}

// Warm-up, not measured: this process is new, so its JIT is cold (the daemon's is not).
const warm = await pair('w');
for (let i = 0; i < config.warmup; i++) {
  const next = warm.arrived(i + 1);
  warm.alice.sendMessage(warm.bob.agentName, body);
  await withTimeout(next, `warm-up message ${i}`);
}
warm.close();

const rounds = [];
for (let r = 0; r < config.rounds; r++) rounds.push(await round(r));
write(JSON.stringify({ rounds }) + '\n', () => process.exit(0));
