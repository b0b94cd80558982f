// hessian.js 2.x as an independent Hessian 2.0 peer for tests/unit/test_hessian2_js.py.
//   node peer.js encode            -> one JSON line {name, hex} per value below
//   node peer.js decode < lines    -> for each input line {name, hex}: {name, value} (JSON)
// hessian.js cannot decode variable-length lists (0x55/0x57): the Python side never sends them.
'use strict';
const hessian = require('hessian.js');
const readline = require('readline');

const VALUES = {
  'null': null,
  'true': true,
  'int 0': 0,
  'int -16': -16,
  'int 47': 47,
  'int 2047': 2047,
  'int -262144': -262144,
  'int max': 2147483647,
  'long 5': {$class: 'long', $: 5},
  'long 2^40': {$class: 'long', $: 1099511627776},
  'double 1.5': 1.5,
  'double 0.0': {$class: 'double', $: 0},
  'double 12.25': 12.25,
  'double 1e300': {$class: 'double', $: 1e300},
  'string empty': '',
  'string ascii': 'hello',
  'string 1024': 'x'.repeat(1024),
  'string emoji': 'smile \ud83d\ude00 caf\u00e9 \u4e2d',
  'string 40000': 'ab'.repeat(20000),
  'binary': Buffer.from([0, 1, 2, 254, 255]),
  'date': new Date(1577836800123),
  'date minute': new Date(1577836800000),
  'list': [1, 'two', null],
  'typed list': {$class: '[int', $: [1, 2, 3]},
  'map': {$class: 'java.util.HashMap', $: {a: 1, b: 'c'}},
  'object': {$class: 'com.example.Point', $: {x: 1, y: 2}},
  'objects sharing a class': [
    {$class: 'com.example.Point', $: {x: 1, y: 2}},
    {$class: 'com.example.Point', $: {x: 3, y: 4}},
  ],
};

function encodeAll() {
  for (const [name, value] of Object.entries(VALUES)) {
    const hex = hessian.encode(value, '2.0').toString('hex');
    process.stdout.write(JSON.stringify({name, hex}) + '\n');
  }
}

function plain(value) {  // Buffers and Dates in a JSON-friendly form
  if (Buffer.isBuffer(value)) return {binary: value.toString('hex')};
  if (value instanceof Date) return {date: value.getTime()};
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = plain(v);
    return out;
  }
  return value;
}

function decodeAll() {
  const rl = readline.createInterface({input: process.stdin});
  rl.on('line', (line) => {
    if (!line.trim()) return;
    const {name, hex} = JSON.parse(line);
    let out;
    try {
      out = {name, value: plain(hessian.decode(Buffer.from(hex, 'hex'), '2.0'))};
    } catch (err) {
      out = {name, error: String(err)};
    }
    process.stdout.write(JSON.stringify(out) + '\n');
  });
}

if (process.argv[2] === 'encode') encodeAll();
else if (process.argv[2] === 'decode') decodeAll();
else { process.stderr.write('usage: node peer.js encode|decode\n'); process.exit(2); }
