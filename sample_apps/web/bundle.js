// Reading an edgekit bundle over HTTP: manifest, safe paths, raw tensors, sha256, and the
// self-test metrics (the same as edgekit's parity: max_abs, max_rel, cosine, top-1).

// A bundle path: '/'-separated segments of letters, digits and '._-', none starting with '.'.
const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

export function checkPath(path, where) {
  const parts = typeof path === "string" && path ? path.split("/") : [];
  if (!parts.length || !parts.every((p) => SEGMENT.test(p))) {
    throw new Error(`${where}: path ${JSON.stringify(path)} escapes the bundle`);
  }
  return path;
}

export async function loadManifest(base) {
  const response = await fetch(new URL("manifest.json", base));
  if (!response.ok) throw new Error(`${base}manifest.json: HTTP ${response.status}`);
  const manifest = await response.json();
  if (manifest.schema_version !== 1) {
    throw new Error(`manifest.json: schema_version ${manifest.schema_version}, this app reads 1`);
  }
  manifest.artifacts.forEach((a, i) => checkPath(a.path, `artifacts[${i}].path`));
  (manifest.preprocessing.files || []).forEach((f, i) => checkPath(f, `preprocessing.files[${i}]`));
  manifest.golden.samples.forEach((s, i) => {
    for (const side of ["inputs", "outputs"]) {
      s[side].forEach((t, j) => checkPath(t.path, `golden.samples[${i}].${side}[${j}].path`));
    }
  });
  return manifest;
}

export async function fetchBytes(base, path) {
  const response = await fetch(new URL(checkPath(path, "fetch"), base));
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

export async function sha256Hex(bytes) {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

const ARRAYS = { float32: Float32Array, int64: BigInt64Array, int32: Int32Array };

// A golden tensor: raw little-endian bytes in C order (every phone and browser is little-endian).
export async function loadTensor(base, entry) {
  const bytes = await fetchBytes(base, entry.path);
  const Type = ARRAYS[entry.dtype];
  const count = entry.shape.reduce((a, b) => a * b, 1);
  if (!Type || bytes.byteLength !== count * Type.BYTES_PER_ELEMENT) {
    throw new Error(`${entry.path}: not ${count} ${entry.dtype} values`);
  }
  return new Type(bytes.buffer, bytes.byteOffset, count);
}

// Metrics of `actual` against `golden` over every sample and output (arrays of Float32Array).
export function compare(pairs, logitsWidth) {
  let maxAbs = 0, maxRel = 0, cosineMin = 1, agree = 0, positions = 0;
  for (const { golden, actual } of pairs) {
    let peak = 0, errMax = 0, dot = 0, na = 0, nb = 0;
    for (let i = 0; i < golden.length; i++) {
      const g = golden[i], a = actual[i];
      if (!Number.isFinite(a)) return { non_finite: 1 };
      errMax = Math.max(errMax, Math.abs(a - g));
      peak = Math.max(peak, Math.abs(g));
      dot += g * a; na += g * g; nb += a * a;
    }
    maxAbs = Math.max(maxAbs, errMax);
    maxRel = Math.max(maxRel, errMax / Math.max(peak, 1e-12));
    const norms = Math.sqrt(na) * Math.sqrt(nb);
    cosineMin = Math.min(cosineMin, norms === 0 ? (na === nb ? 1 : 0) : dot / norms);
    if (logitsWidth) {
      for (let row = 0; row < golden.length; row += logitsWidth) {
        agree += argmax(golden, row, logitsWidth) === argmax(actual, row, logitsWidth) ? 1 : 0;
        positions += 1;
      }
    }
  }
  const metrics = { max_abs: maxAbs, max_rel: maxRel, cosine_min: cosineMin };
  if (positions) metrics.top1_agreement = agree / positions;
  return metrics;
}

export function argmax(values, start, width) {
  let best = start;
  for (let i = start + 1; i < start + width; i++) if (values[i] > values[best]) best = i;
  return best - start;
}

// PASS when every tolerance the manifest sets holds; the misses are the reason.
export function judge(metrics, tolerance) {
  if (metrics.non_finite) return { verdict: "FAIL", reason: "the model produced NaN or Inf" };
  const misses = [];
  if (tolerance.max_rel != null && metrics.max_rel > tolerance.max_rel) {
    misses.push(`max_rel ${metrics.max_rel.toExponential(3)} > ${tolerance.max_rel}`);
  }
  if (tolerance.cosine_min != null && metrics.cosine_min < tolerance.cosine_min) {
    misses.push(`cosine ${metrics.cosine_min.toFixed(6)} < ${tolerance.cosine_min}`);
  }
  if (tolerance.top1_min != null && metrics.top1_agreement != null &&
      metrics.top1_agreement < tolerance.top1_min) {
    misses.push(`top-1 ${metrics.top1_agreement.toFixed(3)} < ${tolerance.top1_min}`);
  }
  return misses.length ? { verdict: "FAIL", reason: misses.join("; ") }
    : { verdict: "PASS", reason: "within the manifest's tolerance" };
}
