// edgekit web sample: load a bundle, run its self-test in onnxruntime-web (wasm), then a demo.
import * as ort from "onnxruntime-web";
import { Tokenizer } from "@huggingface/tokenizers";
import { compare, fetchBytes, judge, loadManifest, loadTensor, sha256Hex } from "./bundle.js";
import { startDemo } from "./demo.js";

const $ = (id) => document.getElementById(id);
const state = { phase: "loading" }; // read by tests: window.edgekit
window.edgekit = state;

function show(id, text, cls) {
  const el = $(id);
  el.textContent = text;
  if (cls) el.className = cls;
}

function bundleBase() {
  const given = new URLSearchParams(location.search).get("bundle") || "bundle/";
  return new URL(given.endsWith("/") ? given : `${given}/`, location.href);
}

// Threads need cross-origin isolation (SharedArrayBuffer); a plain static server has none.
ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
// The wasm runs in a worker (proxy): the page stays responsive while an LM runs.
ort.env.wasm.proxy = true;

// The model session plus what the demos need to feed it.
export async function openModel(base, manifest) {
  const artifact = manifest.artifacts.find((a) => a.format === "onnx" || a.format === "ort");
  if (!artifact) throw new Error("the bundle has no .onnx or .ort artifact for onnxruntime-web");
  const bytes = await fetchBytes(base, artifact.path);
  // WebCrypto exists only in secure contexts (https, localhost): elsewhere the hash is skipped.
  const digest = crypto.subtle ? await sha256Hex(bytes) : null;
  const started = performance.now();
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
  return { artifact, session, intact: digest === null ? null : digest === artifact.sha256, digest,
           loadMs: performance.now() - started };
}

export function feeds(artifact, arrays) {
  const out = {};
  for (const spec of artifact.inputs) out[spec.name] = new ort.Tensor(spec.dtype, arrays[spec.name], spec.shape);
  return out;
}

async function selfTest(base, manifest, model) {
  const pairs = [];
  let runMs = 0;
  for (const sample of manifest.golden.samples) {
    const arrays = {};
    for (const entry of sample.inputs) arrays[entry.name] = await loadTensor(base, entry);
    const started = performance.now();
    const results = await model.session.run(feeds(model.artifact, arrays));
    runMs += performance.now() - started;
    for (const entry of sample.outputs) {
      pairs.push({ golden: await loadTensor(base, entry), actual: results[entry.name].data });
    }
  }
  const logits = manifest.postprocessing.output === "logits";
  const outShape = model.artifact.outputs[0].shape;
  const metrics = compare(pairs, logits ? outShape[outShape.length - 1] : 0);
  const result = judge(metrics, model.artifact.self_test.tolerance);
  if (model.intact === false) {
    result.verdict = "FAIL";
    result.reason = `sha256 differs from the manifest (damaged download); ${result.reason}`;
  }
  return { ...result, metrics, runMs: runMs / manifest.golden.samples.length };
}

export async function loadTokenizer(base, pre) {
  if (pre.kind !== "text") return null;
  if (pre.tokenizer === "bytes") {
    // No tokenizer.json: token ids are UTF-8 bytes (what edgekit's parity samples use).
    return {
      encode: (text) => Array.from(new TextEncoder().encode(text), (b) => b % pre.vocab_size),
      decode: (ids) => new TextDecoder().decode(new Uint8Array(ids.filter((i) => i < 256))),
    };
  }
  const read = async (name) => {
    const path = pre.files.find((f) => f.endsWith(`/${name}`));
    return path ? JSON.parse(new TextDecoder().decode(await fetchBytes(base, path))) : {};
  };
  const tokenizer = new Tokenizer(await read("tokenizer.json"), await read("tokenizer_config.json"));
  return {
    encode: (text) => tokenizer.encode(text).ids,
    decode: (ids) => tokenizer.decode(ids, { skip_special_tokens: true }),
  };
}

async function main() {
  const base = bundleBase();
  try {
    const manifest = await loadManifest(base);
    const model = await openModel(base, manifest);
    const { artifact } = model;
    show("model", `${manifest.model.name} (${manifest.model.task}), ${artifact.path}, ` +
      `${(artifact.bytes / 1048576).toFixed(1)} MiB, onnxruntime-web ${artifact.runtime.version}`);
    show("integrity", model.intact === null ? "sha256 not checked (WebCrypto needs https or localhost)"
      : model.intact ? `sha256 ok (${model.digest.slice(0, 12)}…)`
        : `sha256 MISMATCH: ${model.digest.slice(0, 12)}… != ${artifact.sha256.slice(0, 12)}…`,
    model.intact === false ? "bad" : "ok");
    state.phase = "self-test";
    const result = await selfTest(base, manifest, model);
    Object.assign(state, { phase: "done", selfTest: result, loadMs: model.loadMs });
    show("verdict", result.verdict, result.verdict === "PASS" ? "pass" : "fail");
    const m = result.metrics;
    show("errors", m.non_finite ? "NaN or Inf in the outputs" :
      `max error ${m.max_abs.toExponential(3)} (max_rel ${m.max_rel.toExponential(3)}), ` +
      `cosine ${m.cosine_min.toFixed(6)}` +
      (m.top1_agreement != null ? `, top-1 ${(100 * m.top1_agreement).toFixed(1)}%` : ""));
    show("reason", `${result.reason}; ${manifest.golden.samples.length} golden samples from ` +
      `${manifest.golden.reference.runtime}; ${result.runMs.toFixed(1)} ms per run`);
    document.body.dataset.selftest = result.verdict;
    const tokenizer = await loadTokenizer(base, manifest.preprocessing);
    state.demo = await startDemo(manifest, model, tokenizer, feeds);
    state.demoReady = true;
  } catch (error) {
    Object.assign(state, { phase: "error", error: String(error.message || error) });
    show("verdict", "FAIL", "fail");
    show("reason", String(error.message || error));
    document.body.dataset.selftest = "FAIL";
  }
}

main();
