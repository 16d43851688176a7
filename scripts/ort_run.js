#!/usr/bin/env node
// ort_run.js - ONNX Runtime reference oracle and latency baseline for nnmesh.
//
//   node scripts/ort_run.js MODEL.onnx OUT_DIR [--threads N] [--repeat R]
//                           -i NAME=FILE.npy [-i NAME=FILE.npy ...]
//
// Reads the .npy inputs (float32, float64, int32, int64, uint8, int8, bool;
// little-endian, C order), runs one onnxruntime-node InferenceSession
// (intraOpNumThreads N, default 1; interOpNumThreads 1; graphOptimizationLevel
// 'all'; sequential execution) and writes every model output as
// OUT_DIR/<output name>.npy. With --repeat R (R >= 1) it runs R more times
// after one untimed warm-up and prints one JSON line to stdout:
//   {"median_ms":..,"min_ms":..,"mean_ms":..,"runs":R,"threads":N}
// Exits 2 on bad usage or a bad .npy (message on stderr), 1 if ORT fails.
//
// Install the dependency once: cd scripts && ONNXRUNTIME_NODE_INSTALL=skip npm ci
// (the npm tarball already carries the linux x64/arm64 native binaries).
'use strict';

const fs = require('fs');
const path = require('path');

function die(code, msg) {
  process.stderr.write(`ort_run.js: ${msg}\n`);
  process.exit(code);
}

// ---------------------------------------------------------------- .npy I/O

// dtype descr (without byte-order char) -> [ORT type, TypedArray, itemsize]
const NPY_TYPES = {
  f4: ['float32', Float32Array, 4],
  f8: ['float64', Float64Array, 8],
  i4: ['int32', Int32Array, 4],
  i8: ['int64', BigInt64Array, 8],
  u1: ['uint8', Uint8Array, 1],
  i1: ['int8', Int8Array, 1],
  b1: ['bool', Uint8Array, 1],
};
const ORT_TO_DESCR = {};
for (const [d, [t]] of Object.entries(NPY_TYPES)) ORT_TO_DESCR[t] = d;

// Parse a .npy file's bytes. Returns {type, dims, data} where data is a fresh,
// aligned TypedArray (a Node Buffer may start at a non-zero byteOffset of a
// shared pool, so the payload is copied out before it is viewed).
function npyParse(buf, name) {
  const bad = (why) => { throw new Error(`${name}: ${why}`); };
  if (buf.length < 10 || buf.toString('latin1', 0, 6) !== '\x93NUMPY') bad('not a .npy file');
  const major = buf[6];
  let hlen, hstart;
  if (major === 1) { hlen = buf.readUInt16LE(8); hstart = 10; } else if (major === 2 || major === 3) {
    if (buf.length < 12) bad('truncated header');
    hlen = buf.readUInt32LE(8); hstart = 12;
  } else bad(`unsupported .npy version ${major}`);
  if (hstart + hlen > buf.length) bad('truncated header');
  const header = buf.toString('latin1', hstart, hstart + hlen);
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shape) bad(`malformed header ${JSON.stringify(header)}`);
  if (fortran[1] === 'True') bad('fortran_order arrays are not supported');
  let d = descr[1];
  const order = d[0];
  if ('<>|='.includes(order)) d = d.slice(1);
  const info = NPY_TYPES[d];
  if (!info) bad(`unsupported dtype '${descr[1]}'`);
  if (order === '>' && info[2] > 1) bad(`big-endian dtype '${descr[1]}' is not supported`);
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s.length)
    .map((s) => { if (!/^\d+$/.test(s)) bad(`bad shape entry '${s}'`); return Number(s); });
  const count = dims.reduce((a, b) => a * b, 1);
  const off = hstart + hlen;
  if (buf.length - off !== count * info[2]) {
    bad(`shape [${dims}] of ${info[0]} needs ${count * info[2]} bytes, file has ${buf.length - off}`);
  }
  const ab = buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + off + count * info[2]);
  let data = new info[1](ab);
  if (info[0] === 'bool') data = Uint8Array.from(data, (v) => (v ? 1 : 0));
  return { type: info[0], dims, data };
}

// Serialize {type, dims, data} as a version 1.0 .npy file.
function npyFormat(type, dims, data) {
  const d = ORT_TO_DESCR[type];
  if (!d) throw new Error(`cannot write tensor of type ${type} as .npy`);
  const endian = NPY_TYPES[d][2] === 1 ? '|' : '<';
  const shp = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${endian}${d}', 'fortran_order': False, 'shape': ${shp}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1; pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  let payload;
  if (type === 'bool') payload = Buffer.from(Uint8Array.from(data, (v) => (v ? 1 : 0)));
  else payload = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.concat([pre, Buffer.from(header, 'latin1'), payload]);
}

// ---------------------------------------------------------------- arguments

function parseArgs(argv) {
  const usage = 'usage: ort_run.js MODEL.onnx OUT_DIR [--threads N] [--repeat R] -i NAME=FILE.npy ...';
  const a = { pos: [], inputs: [], threads: 1, repeat: 0 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = () => { if (i + 1 >= argv.length) die(2, `${arg} needs a value\n${usage}`); return argv[++i]; };
    const int = (s, min) => {
      if (!/^\d+$/.test(s) || Number(s) < min) die(2, `${arg}: '${s}' is not an integer >= ${min}`);
      return Number(s);
    };
    if (arg === '-i' || arg === '--input') {
      const v = next();
      const eq = v.indexOf('=');
      if (eq <= 0 || eq === v.length - 1) die(2, `-i wants NAME=FILE.npy, got '${v}'`);
      a.inputs.push([v.slice(0, eq), v.slice(eq + 1)]);
    } else if (arg === '--threads' || arg === '-t') a.threads = int(next(), 1);
    else if (arg === '--repeat' || arg === '-r') a.repeat = int(next(), 1);
    else if (arg === '-h' || arg === '--help') { process.stdout.write(usage + '\n'); process.exit(0); }
    else if (arg.startsWith('-')) die(2, `unknown option ${arg}\n${usage}`);
    else a.pos.push(arg);
  }
  if (a.pos.length !== 2) die(2, usage);
  [a.model, a.outDir] = a.pos;
  return a;
}

// ---------------------------------------------------------------- main

async function main() {
  const a = parseArgs(process.argv.slice(2));
  let ort;
  try {
    // ORT_MODULES (set by the build) points at a node_modules holding onnxruntime-node, so
    // an out-of-tree or distcheck build finds the one scripts/install-deps.sh installed.
    const where = process.env.ORT_MODULES;
    ort = where ? require(path.join(where, 'onnxruntime-node')) : require('onnxruntime-node');
  } catch (e) {
    die(1, `cannot load onnxruntime-node (${e.message}); run: cd ${__dirname} && ONNXRUNTIME_NODE_INSTALL=skip npm ci`);
  }
  if (!fs.existsSync(a.model)) die(2, `${a.model}: no such file`);

  const feeds = {};
  for (const [name, file] of a.inputs) {
    let buf;
    try { buf = fs.readFileSync(file); } catch (e) { die(2, `${file}: ${e.message}`); }
    let t;
    try { t = npyParse(buf, file); } catch (e) { die(2, e.message); }
    feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
  }

  const session = await ort.InferenceSession.create(a.model, {
    intraOpNumThreads: a.threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    executionProviders: ['cpu'],
  });
  const missing = session.inputNames.filter((n) => !(n in feeds));
  if (missing.length) die(2, `${a.model}: missing input(s) ${missing.join(', ')} (give -i NAME=FILE.npy)`);
  for (const n of Object.keys(feeds)) {
    if (!session.inputNames.includes(n)) die(2, `${a.model}: has no input named '${n}' (inputs: ${session.inputNames.join(', ')})`);
  }

  const out = await session.run(feeds);
  fs.mkdirSync(a.outDir, { recursive: true });
  for (const name of session.outputNames) {
    const t = out[name];
    fs.writeFileSync(path.join(a.outDir, `${name}.npy`), npyFormat(t.type, t.dims, t.data));
  }

  if (a.repeat > 0) {
    const times = [];
    for (let r = 0; r < a.repeat; r++) {
      const t0 = process.hrtime.bigint();
      await session.run(feeds);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    const s = [...times].sort((x, y) => x - y);
    const mid = s.length >> 1;
    const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
    const mean = times.reduce((x, y) => x + y, 0) / times.length;
    const r3 = (v) => Math.round(v * 1000) / 1000;
    process.stdout.write(JSON.stringify({
      median_ms: r3(median), min_ms: r3(s[0]), mean_ms: r3(mean), runs: a.repeat, threads: a.threads,
    }) + '\n');
  }
  if (typeof session.release === 'function') await session.release();
}

if (require.main === module) {
  main().catch((e) => die(1, e && e.message ? e.message : String(e)));
}

module.exports = { npyParse, npyFormat };
