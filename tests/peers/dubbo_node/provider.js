#!/usr/bin/env node
// A real Dubbo 2 provider (sofa-rpc-node RpcServer + dubbo-remoting, hessian2) for rpcmesh's
// integration tests. Direct (no registry) unless --zk is given. Listens on 127.0.0.1 only.
//
//   node provider.js --port 20880 [--version 1.0.0] [--group canary]
//                    [--interface com.rpcmesh.test.EchoService]
//                    [--zk 127.0.0.1:2181 [--zk-session-ms 4000]]
//
// --zk: register in that ZooKeeper with sofa-rpc-node's ZookeeperRegistry under /dubbo (the
// standard Dubbo 2 layout): an ephemeral node /dubbo/<interface>/providers/<url-encoded URL>,
// URL dubbo://127.0.0.1:<port>?...&interface=..&version=..&group=.. (docs/dubbo-peers.md).
// SIGTERM removes it (unPublish) before exiting; after SIGKILL ZooKeeper removes it once the
// session (--zk-session-ms, default 4000) times out.
//
// Prints one JSON line {"ready": <port>, "version": ..., "group": ..., "pid": ...,
// "registered": <published URL or null>} on stdout once the port accepts (and, with --zk,
// once the provider sees itself in the registry); logs go to stderr. Stops on SIGTERM / SIGINT.
//
// dubbo-remoting writes a malformed response (no result-flag byte) when a method returns a
// bare falsy value (0, false, "", null). Every method here returns its value wrapped with its
// Java type ({$class: 'int', $: 0} is a truthy object), so echo(""), add(1, -1) and
// echoBool(false) are well-formed; only null (void) cannot be returned at all.
'use strict';

const net = require('net');
const util = require('util');
const { RpcServer } = require('sofa-rpc-node').server;
const { ZookeeperRegistry } = require('sofa-rpc-node').registry;
const zookeeper = require('zookeeper-cluster-client');
const protocol = require('dubbo-remoting');

function parseArgs(argv) {
  const opts = {
    port: 0, version: '1.0.0', group: '', interface: 'com.rpcmesh.test.EchoService',
    zk: '', 'zk-session-ms': 4000,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in opts) || i + 1 >= argv.length) {
      process.stderr.write(`usage: provider.js --port N [--version V] [--group G] [--interface I] [--zk HOST:PORT [--zk-session-ms MS]]; bad ${argv[i]}\n`);
      process.exit(2);
    }
    opts[key] = key === 'port' || key === 'zk-session-ms' ? Number(argv[i + 1]) : argv[i + 1];
  }
  if (!Number.isInteger(opts.port) || opts.port <= 0) {
    process.stderr.write('provider.js: --port N (a free 127.0.0.1 port) is required\n');
    process.exit(2);
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

// Logs to stderr: stdout carries only the ready line.
const logger = {
  debug() {},
  info: (...a) => console.error('[provider] info ' + util.format(...a)),
  warn: (...a) => console.error('[provider] warn ' + util.format(...a)),
  error: (...a) => console.error('[provider] error ' + util.format(...a)),
};

// The 300 000-character result repeats this pattern: ASCII, a 2-byte and a 3-byte UTF-8
// character, so string chunks (32768 UTF-16 units each) split multi-byte characters too.
const PATTERN = 'abcdefghijklmnopqrstuvwxyz0123456789\u00e9\u4e2d';

class LoopbackServer extends RpcServer {
  // RpcServer listens on every interface; the tests' only traffic target is 127.0.0.1.
  _startServer(port) {
    const server = net.createServer();
    server.once('error', err => { this.emit('error', err); });
    server.on('connection', socket => { this._handleSocket(socket); });
    server.listen(port, '127.0.0.1');
    return server;
  }

  // Methods run with this context as `this`: attachments() reads the request's attachments.
  createContext(req, res) {
    return { req, res, logger };
  }
}

function javaLong(value) {
  return { $class: 'long', $: String(value) };
}

// An exception shaped as Java's hessian serializer writes a Throwable (the fields of
// java.lang.Throwable), returned (not thrown) so Dubbo sends it as an exception *result*:
// status 20 OK, result flag 0 (RESPONSE_WITH_EXCEPTION), as a Java provider does for a
// business exception.
function bizException(message) {
  return {
    $class: 'com.rpcmesh.test.BizException',
    $: {
      detailMessage: message,
      cause: null,
      stackTrace: {
        $class: '[java.lang.StackTraceElement',
        $: [{
          $class: 'java.lang.StackTraceElement',
          $: {
            declaringClass: opts.interface,
            methodName: 'fail',
            fileName: 'provider.js',
            lineNumber: { $class: 'int', $: 1 },
          },
        }],
      },
      suppressedExceptions: { $class: 'java.util.ArrayList', $: [] },
    },
  };
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
let inflight = 0;
let peakInflight = 0;

function attachmentsOf(ctx) {
  return (ctx && ctx.req && ctx.req.data && ctx.req.data.requestProps) || {};
}

const service = {
  // echo(String) -> the same string.
  async echo(s) { return { $class: 'java.lang.String', $: s }; },
  // echoBool(boolean) -> the same boolean.
  async echoBool(b) { return { $class: 'boolean', $: b }; },
  // echoDouble(double) -> the same double.
  async echoDouble(d) { return { $class: 'double', $: d }; },
  // add(int, int) -> int.
  async add(a, b) { return { $class: 'int', $: a + b }; },
  // echoLong(long) -> long. hessian.js hands longs beyond 2^53 over as decimal strings.
  async echoLong(x) { return javaLong(x); },
  // echoUser(com.rpcmesh.test.User{name, age, tags: List, attrs: Map}) -> the same User.
  async echoUser(user) { return { $class: 'com.rpcmesh.test.User', $: user }; },
  // echoList(List) / echoMap(Map) -> the same (non-empty) collection.
  async echoList(list) { return { $class: 'java.util.ArrayList', $: list }; },
  async echoMap(map) { return { $class: 'java.util.HashMap', $: map }; },
  // sizeOf(String) -> its length; sizeOf(String[] / List<String>) -> the sum of the lengths.
  async sizeOf(x) {
    const size = Array.isArray(x) ? x.reduce((n, s) => n + String(s).length, 0) : String(x).length;
    return { $class: 'int', $: size };
  },
  // bigResult(n) -> the first n characters of PATTERN repeated.
  async bigResult(n) {
    return { $class: 'java.lang.String', $: PATTERN.repeat(Math.ceil(n / PATTERN.length)).slice(0, n) };
  },
  // fail(message): a business exception result (status 20, result flag 0).
  async fail(message) { return bizException(message); },
  // crash(message): thrown, so the response has status 80 SERVER_ERROR and `message`.
  async crash(message) { throw new Error(message); },
  // sleep(ms) -> ms, after ms milliseconds (client timeouts, concurrency).
  async sleep(ms) {
    inflight += 1;
    peakInflight = Math.max(peakInflight, inflight);
    try {
      await sleep(ms);
    } finally {
      inflight -= 1;
    }
    return { $class: 'int', $: ms };
  },
  // peak() -> the most sleep() calls in progress at once since the last peak(); resets it.
  async peak() {
    const peak = peakInflight;
    peakInflight = inflight;
    return { $class: 'int', $: peak };
  },
  // attachments() -> every attachment the provider received (a map of strings).
  async attachments() {
    return { $class: 'java.util.HashMap', $: Object.assign({}, attachmentsOf(this)) };
  },
  // attachment(key) -> that attachment's value, or "<absent>".
  async attachment(key) {
    const value = attachmentsOf(this)[key];
    return { $class: 'java.lang.String', $: value === undefined || value === null ? '<absent>' : String(value) };
  },
  // whoami() -> {interface, version, group, port, pid}: which provider answered.
  async whoami() {
    return {
      $class: 'java.util.HashMap',
      $: {
        interface: opts.interface,
        version: opts.version,
        group: opts.group || '<none>',
        port: { $class: 'int', $: opts.port },
        pid: { $class: 'int', $: process.pid },
      },
    };
  },
};

// sofa-rpc-node's registry with a short ZooKeeper session (node-zookeeper-client's default
// is 30 s), so a SIGKILLed provider's ephemeral node goes away within seconds.
function zkRegistry() {
  if (!opts.zk) return null;
  const shortSession = {
    createClient: (address, options) => zookeeper.createClient(address, Object.assign(
      { sessionTimeout: opts['zk-session-ms'], spinDelay: 200 }, options)),
  };
  // address/root: '/dubbo' is Dubbo's root (sofa-rpc-node's default is '/sofa-rpc').
  return new ZookeeperRegistry({ logger, address: `${opts.zk}/dubbo`, zookeeper: shortSession });
}

async function main() {
  const registry = zkRegistry();
  const server = new LoopbackServer({
    logger,
    registry,
    publishAddress: '127.0.0.1', // the registered URL's host (else the machine's first IP)
    port: opts.port,
    protocol,
    version: opts.version,
    group: opts.group,
    killTimeout: 2000,
  });
  server.addService({ interfaceName: opts.interface, version: opts.version, group: opts.group }, service);
  server.on('error', err => logger.error(err && err.stack || err));
  await server.start();
  let registered = null;
  if (registry) {
    await registry.ready();
    await server.publish(); // resolves once the registry lists this provider
    registered = [...server.services.values()].map(s => s.publishUrl)[0] || null;
  }
  process.stdout.write(JSON.stringify({
    ready: opts.port, interface: opts.interface, version: opts.version, group: opts.group,
    pid: process.pid, registered,
  }) + '\n');
  const stop = () => {
    // close() unPublishes first (removes the registry node), then closes the server.
    server.close().catch(() => {})
      .then(() => registry && registry.close()).catch(() => {})
      .then(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch(err => {
  process.stderr.write(`provider.js: ${err && err.stack || err}\n`);
  process.exit(1);
});
