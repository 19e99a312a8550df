// Run one jsc8 seed flow against a Macrometa endpoint and print JSON lines.
//
//   NODE_PATH=.cache/sdk/js/node_modules NODE_EXTRA_CA_CERTS=ca.pem \
//     node --require ./tests/sdk/resolve_shim.js tests/sdk/jsc8_flow.js <flow> [--opt value]...
//
// flows: create | produce | consume | admin (consume --params '{"k":"v"}' adds query
// parameters, --nack answers every message with a negative ack); with --via-client the sockets come from the client
// helpers (createStreamProducer / subscribe: host from GET /datacenter/local, no "//").
// The SDK (jsc8 1.1.0) is used unmodified, as a library; only host resolution
// (resolve_shim.js) and TLS trust (NODE_EXTRA_CA_CERTS) are set up around it. Like the seed, the WebSocket host is the configured URL minus
// "https://" (so with a trailing slash the SDK opens wss://api-<host>//_ws/...).
// Every stdout line is one JSON object with an "event" key; the last is "done" or "error".
"use strict";

const jsc8 = require("jsc8");

const DEFAULTS = {
  host: process.env.STREAMFW_SDK_HOST || "localhost",
  port: process.env.STREAMFW_SDK_PORT || "443",
  key: process.env.STREAMFW_SDK_API_KEY || "",
  fabric: "_system",
  stream: "streamQuickstart",
  subscription: "consumer-subscription",
  count: "3",
  prefix: "hello ",
  interval: "0",
  idle: "5",
  hold: "0",
  "ack-first": "-1",
  timeout: "5",
  ensure: "",
  "via-client": "",
  email: "",
  password: "",
  "seed-race": "",
  params: "{}",
  nack: "",
};

const FLAGS = new Set(["ensure", "via-client", "seed-race", "nack"]);

function parseArgs(argv) {
  const [flow, ...rest] = argv;
  const opts = { ...DEFAULTS };
  for (let i = 0; i < rest.length; i += 1) {
    const name = rest[i].replace(/^--/, "");
    if (!(name in DEFAULTS)) throw new Error(`unknown option --${name}`);
    if (FLAGS.has(name)) opts[name] = "1";
    else opts[name] = rest[(i += 1)];
  }
  return { flow, opts };
}

function emit(event, fields = {}) {
  process.stdout.write(`${JSON.stringify({ event, sdk: "jsc8", ...fields })}\n`);
}

function errorFields(err) {
  const message = err && err.message ? err.message : String(err);
  const fields = { type: (err && err.name) || typeof err, message };
  const m = /Unexpected server response: (\d+)/.exec(message);
  if (m) fields.status = Number(m[1]);
  else if (err && err.statusCode) fields.status = err.statusCode;
  else if (err && err.code && typeof err.code === "number") fields.status = err.code;
  return fields;
}

function finish(code) {
  // Let stdout drain, then leave even if a socket or agent is still open.
  process.stdout.write("", () => process.exit(code));
}

async function ensureStream(client, stream, name, seedRace = false) {
  const exists = await client.hasStream(name, false);
  emit("has_stream", { stream: name, value: exists });
  if (!exists) {
    // The seed does not await createStream(); by default we do, so the order is
    // deterministic. --seed-race reproduces the seed: creation races the WebSocket.
    const created = stream.createStream().then((res) => {
      emit("created", { stream: name, stream_id: res.result["stream-id"] });
    });
    if (!seedRace) await created;
  }
}

async function flowCreate(client, stream, opts) {
  await ensureStream(client, stream, opts.stream);
  emit("has_stream", { stream: opts.stream, value: await client.hasStream(opts.stream, false) });
  return 0;
}

async function flowProduce(client, stream, opts, dcName) {
  await ensureStream(client, stream, opts.stream, Boolean(opts["seed-race"]));
  // --via-client: the client helper, which takes the host from GET /datacenter/local.
  const producer = opts["via-client"]
    ? await client.createStreamProducer(opts.stream, false)
    : stream.producer(dcName, { otp: await stream.getOtp() });
  const count = Number(opts.count);
  const timeoutMs = Number(opts.timeout) * 1000;
  return new Promise((resolve) => {
    let acks = 0;
    let settled = false;
    const done = (code) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      producer.close();
      resolve(code);
    };
    const timer = setTimeout(() => {
      emit("timeout", { waiting_for: "acks", acks });
      done(1);
    }, timeoutMs + count * Number(opts.interval) * 1000);
    producer.on("error", (err) => {
      emit("error", errorFields(err));
      done(1);
    });
    producer.on("message", (data) => {
      acks += 1;
      emit("ack", { frame: JSON.parse(String(data)) });
      if (acks >= count) done(0);
    });
    producer.on("open", async () => {
      emit("connected", { role: "producer" });
      for (let i = 0; i < count; i += 1) {
        const text = `${opts.prefix}${i}`;
        producer.send(JSON.stringify({ payload: Buffer.from(text, "utf8").toString("base64") }));
        emit("sent", { payload: text });
        if (Number(opts.interval)) {
          await new Promise((r) => setTimeout(r, Number(opts.interval) * 1000));
        }
      }
      if (count === 0) done(0);
    });
  });
}

async function flowConsume(client, stream, opts, dcName) {
  if (opts.ensure) await ensureStream(client, stream, opts.stream, Boolean(opts["seed-race"]));
  const consumer = opts["via-client"]
    ? await client.subscribe(opts.stream, false, false, opts.subscription)
    : stream.consumer(opts.subscription, dcName, {
        otp: await stream.getOtp(),
        ...JSON.parse(opts.params), // extra query parameters, passed through by the SDK
      });
  const count = Number(opts.count);
  const ackFirst = Number(opts["ack-first"]);
  const holdUntil = Date.now() + Number(opts.hold) * 1000;
  return new Promise((resolve) => {
    let received = 0;
    let code = 0;
    let idleTimer = null;
    let finished = false;
    const close = () => {
      if (finished) return;
      finished = true;
      clearTimeout(idleTimer);
      const wait = Math.max(0, holdUntil - Date.now());
      setTimeout(() => consumer.close(), wait);
    };
    const armIdle = () => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(
        () => {
          emit("idle", { seconds: Number(opts.idle) });
          close();
        },
        Math.max(Number(opts.idle) * 1000, holdUntil - Date.now()),
      );
    };
    // The seed registers no 'error' listener, so a refused handshake (409) kills Node
    // with an unhandled 'error' event. We listen, to report what the SDK surfaced.
    consumer.on("error", (err) => {
      code = 1;
      emit("error", errorFields(err));
    });
    consumer.on("open", () => {
      emit("subscribed", { subscription: opts.subscription });
      armIdle();
    });
    consumer.on("message", (data) => {
      const frame = JSON.parse(String(data));
      received += 1;
      const acked = !opts.nack && (ackFirst < 0 || received <= ackFirst);
      emit("message", {
        payload: Buffer.from(frame.payload, "base64").toString("utf8"),
        messageId: frame.messageId,
        redeliveryCount: frame.redeliveryCount,
        acked,
      });
      if (acked) consumer.send(JSON.stringify({ messageId: frame.messageId }));
      else if (opts.nack) {
        consumer.send(JSON.stringify({ type: "negativeAcknowledge", messageId: frame.messageId }));
      }
      if (count > 0 && received >= count) close();
      else armIdle();
    });
    consumer.on("close", (closeCode) => {
      clearTimeout(idleTimer);
      emit("closed", { received, code: closeCode });
      resolve(code);
    });
  });
}

async function call(name, fn) {
  try {
    emit("admin", { call: name, result: await fn() });
  } catch (err) {
    emit("admin", { call: name, error: errorFields(err) });
  }
}

async function flowAdmin(client, stream, opts) {
  await call("getStreams", () => client.getStreams());
  await call("hasStream", () => client.hasStream(opts.stream, false));
  await call("publishMessage", () => stream.publishMessage("via rest"));
  await call("getStreamStatistics", () => stream.getStreamStatistics());
  await call("backlog", () => stream.backlog());
  await call("getSubscriptionList", () => stream.getSubscriptionList());
  await call("deleteSubscriptions", () => stream.deleteSubscriptions(opts.subscription));
  await call("getSubscriptionList", () => stream.getSubscriptionList());
  await call("deleteStream", () => stream.deleteStream());
  await call("hasStream", () => client.hasStream(opts.stream, false));
  return 0;
}

const FLOWS = {
  create: flowCreate,
  produce: flowProduce,
  consume: flowConsume,
  admin: flowAdmin,
};

async function main() {
  const { flow, opts } = parseArgs(process.argv.slice(2));
  if (!FLOWS[flow]) throw new Error(`unknown flow ${flow}; one of ${Object.keys(FLOWS)}`);
  const baseUrl = `https://${opts.host}:${opts.port}/`;
  let client;
  if (opts.email) {
    // fabric.login: POST /_open/auth, then "Bearer <jwt>" and the tenant from the answer.
    client = new jsc8({ url: baseUrl, fabricName: opts.fabric });
    await client.login(opts.email, opts.password);
  } else {
    client = new jsc8({ url: baseUrl, apiKey: opts.key, fabricName: opts.fabric });
  }
  emit("client", { url: baseUrl, tenant: client._connection.getTenantName() });
  const stream = client.stream(opts.stream, false);
  const dcName = baseUrl.replace("https://", ""); // as the seed does: "<host>:<port>/"
  const code = await FLOWS[flow](client, stream, opts, dcName);
  if (code === 0) emit("done", { flow });
  return code;
}

main().then(finish, (err) => {
  emit("error", errorFields(err));
  finish(1);
});
