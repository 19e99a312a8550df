// Loaded with `node --require ./tests/sdk/resolve_shim.js` before jsc8.
// jsc8 always prepends "api-" to the host it is given; no resolver knows
// "api-localhost". This shim answers names starting with "api-" with
// $STREAMFW_SDK_RESOLVE_TO (default 127.0.0.1) inside this Node process only.
// Every other name goes to the real dns.lookup. The SDK itself is not modified.
"use strict";
const dns = require("dns");
const net = require("net");

const target = process.env.STREAMFW_SDK_RESOLVE_TO || "127.0.0.1";
const family = net.isIP(target) || 4;
const realLookup = dns.lookup;

function shimLookup(hostname, options, callback) {
  if (typeof options === "function") {
    callback = options;
    options = {};
  }
  if (typeof hostname === "string" && hostname.startsWith("api-")) {
    const all = typeof options === "object" && options !== null && options.all;
    process.nextTick(() =>
      all ? callback(null, [{ address: target, family }]) : callback(null, target, family),
    );
    return {};
  }
  return realLookup.call(dns, hostname, options, callback);
}

dns.lookup = shimLookup;
