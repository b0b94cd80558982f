#!/usr/bin/env node
// A real Dubbo 2 consumer (sofa-rpc-node RpcClient + dubbo-remoting, hessian2) for rpcmesh's
// integration tests: connects DIRECTLY (no registry) to one 127.0.0.1 port, over one
// connection, and runs the calls it reads on stdin.
//
//   node consumer.js --port 20880 [--version 1.0.0] [--group G] [--timeout 3000]
//                    [--heartbeat-ms 500] [--interface com.rpcmesh.test.EchoService]
//
// stdin, one JSON object a line (handled concurrently: send 20 lines, get 20 answers):
//   {"id": 1, "method": "echo", "args": ["hi"], "attachments": {"k": "v"}, "timeout": 3000}
//   {"id": 2, "op": "stats"}
// Arguments use hessian.js's notation for Java types: {"$class": "long", "$": "9007199254740993"},
// {"$class": "com.rpcmesh.test.User", "$": {...}}; a plain object is a java.util.HashMap.
//
// stdout, one JSON object a line, in completion order:
//   {"ready": true, "port": 20880, "local_port": 51234}                       once connected
//   {"id": 1, "ok": true, "value": "hi", "ms": 2}
//   {"id": 1, "ok": false, "ms": 3, "error": {"kind": "exception"|"server_error"|"timeout"|
//        "closed"|"client", "name": ..., "message": ..., "status": 20|80|..., "java_class": ...}}
//   {"id": 2, "ok": true, "value": {"heartbeats_sent": n, "heartbeat_acks": n, ...}}
//
// Responses are observed through a wrapper of dubbo-remoting's protocol.decode (status byte,
// result flag, heartbeat acks): the library itself drops the status and ignores acks.
'use strict';

const readline = require('readline');
const protocolModule = require('dubbo-remoting/lib/protocol');
const protocol = require('dubbo-remoting');
const DynamicConfig = require('sofa-rpc-node/lib/client/dynamic_config');

function parseArgs(argv) {
  const opts = {
    port: 0, host: '127.0.0.1', version: '1.0.0', group: '', timeout: 3000, 'heartbeat-ms': 0,
    interface: 'com.rpcmesh.test.EchoService',
  };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in opts) || i + 1 >= argv.length) {
      process.stderr.write(`usage: consumer.js --port N [--version V] [--group G] [--timeout MS] [--heartbeat-ms MS]; bad ${argv[i]}\n`);
      process.exit(2);
    }
    opts[key] = typeof opts[key] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  if (!Number.isInteger(opts.port) || opts.port <= 0) {
    process.stderr.write('consumer.js: --port N is required\n');
    process.exit(2);
  }
  if (opts.host !== '127.0.0.1' && opts.host !== 'localhost') {
    process.stderr.write('consumer.js: loopback targets only\n');
    process.exit(2);
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const logger = {
  debug() {},
  info: (...a) => console.error('[consumer] info', ...a),
  warn: (...a) => console.error('[consumer] warn', ...a),
  error: (...a) => console.error('[consumer] error', ...a),
};

// ---------------------------------------------------------------------------------------
// library settings, before any client object exists

// The circuit breaker opens after 20 calls with >= 50 % errors in a window and then fails
// calls locally (RpcCircuitBreakerError): error-scenario tests must reach the wire.
DynamicConfig.instance.circuitBreaker.forceClosed = true;
// Heartbeats: the connection sends one when it has been idle (no call, no heartbeat sent)
// for more than connectionOpts.maxIdleTime (30 s by default), checked on every tick of the
// health-metric window (metric.bucketSizeInMs, 10 s by default). --heartbeat-ms shortens both.
if (opts['heartbeat-ms'] > 0) {
  DynamicConfig.instance.metric.bucketSizeInMs = opts['heartbeat-ms'];
}

// ---------------------------------------------------------------------------------------
// observe decoded packets: status byte, result flag, heartbeat acks

const stats = { heartbeats_sent: 0, heartbeat_acks: 0, responses: 0, statuses: {} };
const origDecode = protocolModule.decode;
protocolModule.decode = (buf, options) => {
  const obj = origDecode(buf, options);
  const status = buf[3];
  if (obj.packetType === 'heartbeat_ack') {
    stats.heartbeat_acks += 1;
  } else if (obj.packetType === 'response') {
    stats.responses += 1;
    stats.statuses[status] = (stats.statuses[status] || 0) + 1;
    if (obj.data && obj.data.error && typeof obj.data.error === 'object') {
      obj.data.error.dubboStatus = status;
    }
  }
  return obj;
};
const origHeartbeatEncode = protocolModule.heartbeatEncode;
protocolModule.heartbeatEncode = (...args) => {
  stats.heartbeats_sent += 1;
  return origHeartbeatEncode(...args);
};

const { RpcClient } = require('sofa-rpc-node').client;

// ---------------------------------------------------------------------------------------

function toJson(value) {
  // JSON cannot hold Buffers, Longs or Errors as such: make them plain.
  return JSON.parse(JSON.stringify(value, (key, v) => {
    if (v && v.type === 'Buffer' && Array.isArray(v.data)) return { $bytes: Buffer.from(v.data).toString('hex') };
    if (typeof v === 'bigint') return v.toString();
    return v;
  }));
}

function describeError(err) {
  const name = (err && err.name) || 'Error';
  const status = err && err.dubboStatus;
  let kind = 'client';
  if (name === 'RpcResponseTimeoutError') kind = 'timeout';
  else if (name === 'RpcSocketCloseError' || name === 'RpcNoProviderError') kind = 'closed';
  else if (status === 20) kind = 'exception';
  else if (status !== undefined) kind = 'server_error';
  const out = { kind, name, message: String(err && err.message), status: status === undefined ? null : status };
  // hessian.js decodes a Java exception result into a JavaExceptionError: keep its class
  if (kind === 'exception') out.java_class = err.name;
  return out;
}

function write(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

async function main() {
  const client = new RpcClient({
    logger,
    protocol,
    connectionOpts: {
      protocol,
      noDelay: true,
      connectTimeout: 3000,
      maxIdleTime: opts['heartbeat-ms'] > 0 ? opts['heartbeat-ms'] : 30000,
    },
  });
  client.on('error', err => logger.warn('client error', err && err.message));
  const consumer = client.createConsumer({
    interfaceName: opts.interface,
    version: opts.version,
    group: opts.group,
    serverHost: `${opts.host}:${opts.port}`,
    responseTimeout: opts.timeout,
  });
  await consumer.ready();
  const conn = await client.connectionManager.createAndGet(consumer.parseUrl(`${opts.host}:${opts.port}`));
  if (!conn) {
    write({ ready: false, error: `cannot connect to ${opts.host}:${opts.port}` });
    process.exit(1);
  }
  write({ ready: true, port: opts.port, local_port: conn._socket.localPort });

  let pending = 0;
  let inputClosed = false;
  const maybeExit = () => {
    if (inputClosed && pending === 0) {
      client.close().catch(() => {}).then(() => process.exit(0));
      setTimeout(() => process.exit(0), 1000).unref();
    }
  };

  async function handle(cmd) {
    const started = Date.now();
    if (cmd.op === 'stats') {
      const c = client.connectionManager.get(consumer.parseUrl(`${opts.host}:${opts.port}`));
      return {
        id: cmd.id, ok: true,
        value: Object.assign({}, stats, {
          connections: client.connectionManager.connections.size,
          connected: Boolean(c && c.isConnected),
          local_port: c && c._socket ? c._socket.localPort : null,
        }),
      };
    }
    try {
      const options = { responseTimeout: cmd.timeout || opts.timeout };
      if (cmd.attachments) options.requestProps = cmd.attachments;
      const value = await consumer.invoke(cmd.method, cmd.args || [], options);
      return { id: cmd.id, ok: true, value: toJson(value), ms: Date.now() - started };
    } catch (err) {
      return { id: cmd.id, ok: false, error: describeError(err), ms: Date.now() - started };
    }
  }

  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  rl.on('line', line => {
    if (!line.trim()) return;
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch (err) {
      write({ id: null, ok: false, error: { kind: 'client', name: 'BadCommand', message: err.message, status: null } });
      return;
    }
    pending += 1;
    handle(cmd).then(write, err => write({ id: cmd.id, ok: false, error: describeError(err) }))
      .finally(() => { pending -= 1; maybeExit(); });
  });
  rl.on('close', () => { inputClosed = true; maybeExit(); });
}

main().catch(err => {
  write({ ready: false, error: String(err && err.stack || err) });
  process.exit(1);
});
