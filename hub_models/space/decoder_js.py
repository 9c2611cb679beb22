"""The live latent slider, decoded in the browser: no server round trip while a visitor drags a slider.

`hub_models.space.latent.browser_decoder` turns a VAE's decoder into data (layers, base64 float32 weights in
PyTorch's layout); `DECODER_JS` runs it in plain JavaScript. `live_decode_js` wraps it into the sliders' `js=`
event of spaces_app/tabs/latent.py; tests/test_space_js_decoder.py runs it in node against the Python decoder. When the
model has no browser decoder (or anything fails), `liveDecode` bumps a counter instead, whose change makes the
server decode through `/decode_latent` (the fallback, and what API clients call).

The JavaScript lives in this module (not a .js file) so that it ships wherever the library goes: a wheel, and the
published Space, whose library is its `.py` files.
"""

from __future__ import annotations

DECODER_JS = r"""
function genlabFloats(b64) {
  const bytes = typeof atob === "function"
    ? Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))
    : new Uint8Array(Buffer.from(b64, "base64"));  // node (the tests)
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

// The spec's weights as Float32Arrays, decoded once per spec (a spec object is replaced when the model changes).
const genlabWeightCache = (globalThis.__genlabWeightCache ||= new WeakMap());

function genlabWeights(spec) {
  let layers = genlabWeightCache.get(spec);
  if (!layers) {
    layers = spec.layers.map((l) => (l.weight ? { ...l, w: genlabFloats(l.weight), b: genlabFloats(l.bias) } : l));
    genlabWeightCache.set(spec, layers);
  }
  return layers;
}

// Latent values (array of numbers) → pixel probabilities, a Float64Array of height × width (sigmoid of the logits).
// A conditional VAE (spec.num_classes > 0) decodes z with the one-hot of `label` appended, as its first layer takes.
function genlabDecode(spec, z, label) {
  const classes = Number(spec.num_classes) || 0;
  let x = Float64Array.from(z);
  if (classes > 0) {
    const digit = Number(label ?? 0);
    if (!Number.isInteger(digit) || digit < 0 || digit >= classes) throw new Error(`not a digit: ${label}`);
    const input = new Float64Array(z.length + classes);
    input.set(x);
    input[z.length + digit] = 1;
    x = input;
  }
  let shape = [x.length];
  for (const l of genlabWeights(spec)) {
    if (l.type === "linear") {
      const y = new Float64Array(l.out);
      for (let o = 0; o < l.out; o++) {
        let s = l.b[o];
        const row = o * l.in;
        for (let i = 0; i < l.in; i++) s += l.w[row + i] * x[i];
        y[o] = s;
      }
      x = y;
      shape = [l.out];
    } else if (l.type === "relu") {
      for (let i = 0; i < x.length; i++) if (x[i] < 0) x[i] = 0;
    } else if (l.type === "reshape") {
      shape = l.shape;
    } else if (l.type === "conv_transpose2d") {
      // PyTorch's ConvTranspose2d: weight (in, out, k, k); out size (h − 1)·s − 2p + k + output_padding.
      const [, h, w] = shape;
      const k = l.kernel, s = l.stride, p = l.padding;
      const oh = (h - 1) * s - 2 * p + k + l.output_padding, ow = (w - 1) * s - 2 * p + k + l.output_padding;
      const y = new Float64Array(l.out * oh * ow);
      for (let co = 0; co < l.out; co++) y.fill(l.b[co], co * oh * ow, (co + 1) * oh * ow);
      for (let ci = 0; ci < l.in; ci++) {
        for (let iy = 0; iy < h; iy++) {
          for (let ix = 0; ix < w; ix++) {
            const v = x[(ci * h + iy) * w + ix];
            if (v === 0) continue;
            for (let co = 0; co < l.out; co++) {
              const wBase = (ci * l.out + co) * k * k, yBase = co * oh * ow;
              for (let ky = 0; ky < k; ky++) {
                const oy = iy * s - p + ky;
                if (oy < 0 || oy >= oh) continue;
                for (let kx = 0; kx < k; kx++) {
                  const ox = ix * s - p + kx;
                  if (ox >= 0 && ox < ow) y[yBase + oy * ow + ox] += v * l.w[wBase + ky * k + kx];
                }
              }
            }
          }
        }
      }
      x = y;
      shape = [l.out, oh, ow];
    } else {
      throw new Error(`decoder_js: unknown layer ${l.type}`);
    }
  }
  for (let i = 0; i < x.length; i++) x[i] = 1 / (1 + Math.exp(-x[i]));
  return x;
}

// Pixel probabilities (28 × 28) → a PNG data URL, `scale`× nearest-neighbour, like the server's 112-px PNG.
function genlabPng(pixels, scale) {
  const side = Math.round(Math.sqrt(pixels.length)), size = side * scale;
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(size, size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const p = pixels[Math.floor(y / scale) * side + Math.floor(x / scale)];
      const v = Math.round(Math.min(1, Math.max(0, p || 0)) * 255), o = (y * size + x) * 4;
      img.data[o] = img.data[o + 1] = img.data[o + 2] = v;
      img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  return canvas.toDataURL("image/png");
}

// The sliders' `js=` event: args = [spec, z1 … zN, the digit image's value, the fallback counter, the class of a
// conditional VAE]. Returns [image, counter]: the digit decoded here with the counter unchanged, or the image
// unchanged and the counter + 1 (the server decodes).
function liveDecode(args, nSliders) {
  const spec = args[0];
  const digit = args[1 + nSliders];
  const tick = Number(args[2 + nSliders]) || 0;
  const label = args[3 + nSliders];
  try {
    if (!spec || !Array.isArray(spec.layers)) throw new Error("no browser decoder for this model");
    const z = args.slice(1, 1 + spec.latent_dim).map(Number);
    if (z.length !== spec.latent_dim || !z.every(Number.isFinite)) throw new Error("not a latent");
    const url = genlabPng(genlabDecode(spec, z, label), 4);
    return [{ url, path: null, orig_name: "decoded_digit.png", mime_type: "image/png",
              meta: { _type: "gradio.FileData" } }, tick];
  } catch (err) {
    return [digit, tick + 1];
  }
}

if (typeof module !== "undefined" && module.exports) {
  module.exports = { genlabDecode, genlabFloats, liveDecode };
}
"""


def live_decode_js(n_sliders: int) -> str:
    """The sliders' `js=` function: `DECODER_JS` inlined, called with the event's values — the decoder's data,
    the `n_sliders` slider values, the digit image, the fallback counter, the digit of a conditional VAE — and
    returning [image, counter]."""
    return f"(...args) => {{\n{DECODER_JS}\nreturn liveDecode(args, {int(n_sliders)});\n}}"


__all__ = ["DECODER_JS", "live_decode_js"]
