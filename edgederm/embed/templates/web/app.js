// EdgeDerm web demo: runs the exported ONNX model with onnxruntime-web (WebAssembly, one thread).
// Every model number (input size, resize policy, interpolation, mean/std, scale, labels, threshold,
// temperature, operating points)
// is read from model_info.json; this file holds only Pillow's resampling arithmetic.
'use strict';

const edgederm = (window.edgederm = { state: 'loading', error: null, last: null });
const $ = (id) => document.getElementById(id);

function status(text, state) {
  $('status').textContent = text;
  if (state) edgederm.state = state;
}

// --- Pillow's Image.resize, exactly (libImaging/Resample.c: separable convolution, horizontal pass then
// vertical, coefficients in fixed point with 22 fractional bits, each pass rounded and clipped to 0..255).
const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;
const sinc = (x) => (x === 0 ? 1 : Math.sin(x * Math.PI) / (x * Math.PI));
const FILTERS = {
  bilinear: { support: 1, f: (x) => { x = Math.abs(x); return x < 1 ? 1 - x : 0; } },
  bicubic: { support: 2, f: (x) => {
    const a = -0.5; x = Math.abs(x);
    if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
    return 0;
  } },
  lanczos: { support: 3, f: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
};

function coefficients(inSize, outSize, filter) {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Float64Array(outSize * ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = filter.f((x + xmin - center + 0.5) * ss);
      kk[xx * ksize + x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      let k = ww !== 0 ? kk[xx * ksize + x] / ww : kk[xx * ksize + x];
      kk[xx * ksize + x] = k < 0 ? Math.trunc(-0.5 + k * ONE) : Math.trunc(0.5 + k * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

const clip8 = (ss) => Math.min(255, Math.max(0, Math.floor(ss / ONE)));

// One pass along x (horizontal) or y: src is width*height*3 RGB bytes.
function pass(src, width, height, outSize, horizontal, filter) {
  const inSize = horizontal ? width : height;
  const { ksize, bounds, kk } = coefficients(inSize, outSize, filter);
  const ow = horizontal ? outSize : width;
  const oh = horizontal ? height : outSize;
  const out = new Uint8Array(ow * oh * 3);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      const o = horizontal ? x : y;
      const min = bounds[o * 2];
      const n = bounds[o * 2 + 1];
      let s0 = ONE / 2, s1 = ONE / 2, s2 = ONE / 2;
      for (let i = 0; i < n; i++) {
        const k = kk[o * ksize + i];
        const p = horizontal ? (y * width + min + i) * 3 : ((min + i) * width + x) * 3;
        s0 += src[p] * k; s1 += src[p + 1] * k; s2 += src[p + 2] * k;
      }
      const q = (y * ow + x) * 3;
      out[q] = clip8(s0); out[q + 1] = clip8(s1); out[q + 2] = clip8(s2);
    }
  }
  return out;
}

function nearest(src, width, height, ow, oh) {  // Pillow's NEAREST: the source pixel under each centre
  const out = new Uint8Array(ow * oh * 3);
  for (let y = 0; y < oh; y++) {
    const sy = Math.min(height - 1, Math.floor((y + 0.5) * (height / oh)));
    for (let x = 0; x < ow; x++) {
      const sx = Math.min(width - 1, Math.floor((x + 0.5) * (width / ow)));
      for (let c = 0; c < 3; c++) out[(y * ow + x) * 3 + c] = src[(sy * width + sx) * 3 + c];
    }
  }
  return out;
}

function resize(rgb, width, height, ow, oh, interpolation) {
  if (ow === width && oh === height) return rgb;
  if (interpolation === 'nearest') return nearest(rgb, width, height, ow, oh);
  const filter = FILTERS[interpolation];
  if (!filter) throw new Error(`interpolation ${interpolation} is not implemented in app.js`);
  const tmp = ow === width ? rgb : pass(rgb, width, height, ow, true, filter);
  return oh === height ? tmp : pass(tmp, ow, height, oh, false, filter);
}

// Python's round(): half to even.
function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// Preprocessing._fit: stretch, or resize the shorter side and cut out the centre.
function fit(rgb, width, height, pre) {
  const [h, w] = pre.input_size;
  if (pre.resize === 'stretch') return resize(rgb, width, height, w, h, pre.interpolation);
  const s = Math.max(h / height, w / width);
  const nw = Math.max(w, roundHalfEven(width * s));
  const nh = Math.max(h, roundHalfEven(height * s));
  const big = resize(rgb, width, height, nw, nh, pre.interpolation);
  const left = Math.floor((nw - w) / 2);
  const top = Math.floor((nh - h) / 2);
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) out.set(big.subarray(((top + y) * nw + left) * 3, ((top + y) * nw + left + w) * 3), y * w * 3);
  return out;
}

// Preprocessing.normalize, in float32 step by step as numpy does it.
function normalize(rgb, pre, layout) {
  const [h, w] = pre.input_size;
  const plane = h * w;
  const f = Math.fround;
  const scale = f(pre.scale);
  const mean = pre.mean.map(f);
  const std = pre.std.map(f);
  const x = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) {
      const v = rgb[i * 3 + (pre.channel_order === 'BGR' ? 2 - c : c)];
      x[layout === 'NHWC' ? i * 3 + c : c * plane + i] = f(f(f(v * scale) - mean[c]) / std[c]);
    }
  }
  return x;
}

// Decoded pixels as Pillow sees them: no colour management, no EXIF rotation, alpha dropped.
async function decode(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none', imageOrientation: 'none' });
  } catch (e) {  // browsers without imageOrientation 'none'
    bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  }
  const canvas = document.createElement('canvas');
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  const rgba = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
  const rgb = new Uint8Array(bitmap.width * bitmap.height * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) { rgb[j] = rgba[i]; rgb[j + 1] = rgba[i + 1]; rgb[j + 2] = rgba[i + 2]; }
  return { rgb, width: bitmap.width, height: bitmap.height };
}

function show(rgb, w, h, mask, threshold) {
  const canvas = $('view');
  canvas.width = w;
  canvas.height = h;
  const img = new ImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    let r = rgb[i * 3], g = rgb[i * 3 + 1], b = rgb[i * 3 + 2];
    if (mask && mask[i] > threshold) { r = Math.round(r * 0.55 + 255 * 0.45); g = Math.round(g * 0.55); b = Math.round(b * 0.55); }
    img.data.set([r, g, b, 255], i * 4);
  }
  canvas.getContext('2d').putImageData(img, 0, 0);
}

function cell(text, cls) {
  const td = document.createElement('td');
  if (cls) td.className = cls;
  if (text instanceof Node) td.appendChild(text); else td.textContent = text;
  return td;
}

function showClasses(labels, probabilities) {
  const table = document.createElement('table');
  const best = probabilities.indexOf(Math.max(...probabilities));
  labels.forEach((label, i) => {
    const tr = document.createElement('tr');
    tr.dataset.label = label;
    tr.dataset.probability = String(probabilities[i]);
    if (i === best) tr.className = 'top';
    const bar = document.createElement('span');
    bar.style.width = `${Math.round(probabilities[i] * 160)}px`;
    tr.append(cell(label), cell(`${(probabilities[i] * 100).toFixed(1)} %`), cell(bar, 'bar'));
    table.appendChild(tr);
  });
  $('result').replaceChildren(table);
}

// The manifest's operating points, applied as written: refer when P(class) >= threshold.
function decide(points, labels, probabilities) {
  return points.map((op) => {
    const p = probabilities[labels.indexOf(op.class)];
    return { name: op.name, class: op.class, probability: p, threshold: op.threshold, fired: p >= op.threshold };
  });
}

function showDecisions(decisions) {
  decisions.forEach((d) => {
    const p = document.createElement('p');
    p.className = 'decision';
    p.dataset.name = d.name;
    p.dataset.fired = String(d.fired);
    p.textContent = `${d.name}: ${d.fired ? 'YES' : 'no'} (P(${d.class}) ${(d.probability * 100).toFixed(1)} % ` +
      `${d.fired ? '≥' : '<'} threshold ${(d.threshold * 100).toFixed(1)} %)`;
    $('result').appendChild(p);
  });
}

function showMask(probability, threshold) {
  const lesion = probability.reduce((n, p) => n + (p > threshold ? 1 : 0), 0) / probability.length;
  const p = document.createElement('p');
  p.id = 'lesion';
  p.dataset.lesionFraction = String(lesion);
  p.textContent = `Lesion (probability > ${threshold}): ${(lesion * 100).toFixed(1)} % of the picture, shaded red.`;
  $('result').replaceChildren(p);
}

async function main() {
  const info = await (await fetch('model_info.json')).json();
  const labels = (await (await fetch(info.labels_file)).text()).split('\n').filter((s) => s.length);
  const pre = info.preprocessing;
  ort.env.wasm.wasmPaths = new URL('ort/', document.baseURI).href;
  ort.env.wasm.numThreads = 1;  // threads need SharedArrayBuffer, i.e. cross-origin isolation headers
  ort.env.wasm.proxy = false;
  const session = await ort.InferenceSession.create(info.artifact.file, { executionProviders: ['wasm'] });
  const [h, w] = pre.input_size;
  const shape = info.input.shape.map((d) => (typeof d === 'number' && d > 0 ? d : 1));  // free batch -> 1
  const input = $('file');
  input.disabled = false;
  status('Ready. Pick an image.', 'ready');
  input.addEventListener('change', async () => {
    if (!input.files.length) return;
    status('Running…', 'running');
    try {
      const t0 = performance.now();
      const image = await decode(input.files[0]);
      const pixels = fit(image.rgb, image.width, image.height, pre);
      const tensor = new ort.Tensor('float32', normalize(pixels, pre, info.input.layout), shape);
      const out = await session.run({ [info.input.name]: tensor });
      const y = Array.from((out[info.output.name] || Object.values(out)[0]).data);
      const ms = performance.now() - t0;
      if (info.output.activation === 'softmax') {  // class scores; otherwise sigmoid mask logits
        const t = info.output.temperature || 1;  // softmax(logits / T): the manifest's temperature
        const top = Math.max(...y);
        const e = y.map((v) => Math.exp((v - top) / t));
        const sum = e.reduce((a, b) => a + b, 0);
        const probabilities = e.map((v) => v / sum);
        const decisions = decide(info.output.operating_points || [], labels, probabilities);
        edgederm.last = { pixels, logits: y, probabilities, labels, decisions, ms };
        show(pixels, w, h, null, 0);
        showClasses(labels, probabilities);
        showDecisions(decisions);
      } else {
        const probability = y.map((v) => 1 / (1 + Math.exp(-v)));
        edgederm.last = { pixels, logits: y, probability, ms };
        show(pixels, w, h, probability, info.output.threshold);
        showMask(probability, info.output.threshold);
      }
      status(`${input.files[0].name}: done in ${ms.toFixed(0)} ms. Not a diagnosis.`, 'done');
    } catch (e) {
      edgederm.error = String(e);
      status(`Could not run the model on this file: ${e}`, 'error');
    }
  });
}

main().catch((e) => {
  edgederm.error = String(e);
  status(`The model did not load: ${e}`, 'error');
});
