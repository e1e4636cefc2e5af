// The demos, chosen by the manifest's postprocessing: greedy text generation for an LM,
// semantic search for an encoder, classification for an image classifier.
import { argmax } from "./bundle.js";

const SENTENCES = [
  "The train to the airport leaves every twenty minutes.",
  "Add a pinch of salt before the water boils.",
  "My phone battery dies before lunch.",
  "The museum is closed on Mondays.",
  "Water the tomatoes early in the morning.",
  "The meeting moved to Thursday afternoon.",
];

function element(tag, attrs = {}, text = "") {
  const el = Object.assign(document.createElement(tag), attrs);
  if (text) el.textContent = text;
  return el;
}

// Token ids right-padded to the graph's fixed window; causal LMs ignore what follows.
function window(ids, seqLen, pad) {
  const input = new BigInt64Array(seqLen).fill(BigInt(pad));
  const mask = new BigInt64Array(seqLen);
  ids.slice(0, seqLen).forEach((id, i) => { input[i] = BigInt(id); mask[i] = 1n; });
  return { input_ids: input, attention_mask: mask };
}

export function textGenerator(manifest, model, tokenizer, feeds) {
  const pre = manifest.preprocessing;
  const out = manifest.postprocessing.output;
  const pad = pre.special_ids.pad ?? 0;
  const eos = pre.special_ids.eos;
  const vocab = model.artifact.outputs[0].shape.at(-1);
  // The full-sequence graph reruns the whole window per token. A decode (KV-cache) artifact
  // in the manifest would take one token per step instead; the loop stays the same.
  return async function generate(prompt, maxNew = 16) {
    const ids = tokenizer.encode(prompt);
    const generated = [];
    const started = performance.now();
    for (let step = 0; step < maxNew; step++) {
      const context = ids.slice(-pre.seq_len);
      const result = await model.session.run(feeds(model.artifact, window(context, pre.seq_len, pad)));
      const next = argmax(result[out].data, (context.length - 1) * vocab, vocab);
      if (next === eos) break;
      ids.push(next);
      generated.push(next);
    }
    const msPerToken = (performance.now() - started) / Math.max(1, generated.length);
    return { ids: generated, text: tokenizer.decode(generated), msPerToken };
  };
}

export function embedder(manifest, model, tokenizer, feeds) {
  const pre = manifest.preprocessing;
  const out = manifest.postprocessing.output;
  const hidden = model.artifact.outputs[0].shape.at(-1);
  return async function embed(text) {
    const ids = tokenizer.encode(text).slice(0, pre.seq_len);
    const result = await model.session.run(feeds(model.artifact, window(ids, pre.seq_len, pre.special_ids.pad ?? 0)));
    const states = result[out].data;
    const vector = new Float32Array(hidden);
    for (let t = 0; t < ids.length; t++) for (let h = 0; h < hidden; h++) vector[h] += states[t * hidden + h] / ids.length;
    const norm = Math.hypot(...vector) || 1;
    return vector.map((v) => v / norm);
  };
}

function imageInput(pre, canvas) {
  const { width, height, channels } = pre;
  const pixels = canvas.getContext("2d").getImageData(0, 0, width, height).data;
  const input = new Float32Array(channels * height * width);
  for (let c = 0; c < channels; c++) {
    for (let i = 0; i < height * width; i++) {
      input[c * height * width + i] = (pixels[i * 4 + c] * pre.rescale - pre.mean[c]) / pre.std[c];
    }
  }
  return input;
}

export async function startDemo(manifest, model, tokenizer, feeds) {
  const root = document.getElementById("demo");
  const kind = manifest.postprocessing.kind;
  if (kind === "next_token") {
    const generate = textGenerator(manifest, model, tokenizer, feeds);
    const prompt = element("textarea", { id: "prompt", rows: 2, value: "The best way to learn is" });
    const button = element("button", { id: "run-demo" }, "Generate");
    const output = element("p", { id: "demo-output", className: "output" });
    button.onclick = async () => {
      button.disabled = true;
      const result = await generate(prompt.value, 16);
      output.textContent = `${prompt.value}${result.text}  (${result.msPerToken.toFixed(0)} ms/token)`;
      root.dataset.ids = result.ids.join(",");
      button.disabled = false;
    };
    root.append(element("h2", {}, "Generate (greedy)"), prompt, button, output);
    return { kind, generate };
  }
  if (kind === "embedding") {
    const embed = embedder(manifest, model, tokenizer, feeds);
    const corpus = [];
    for (const sentence of SENTENCES) corpus.push({ sentence, vector: await embed(sentence) });
    const query = element("input", { id: "prompt", value: "when does the museum open" });
    const button = element("button", { id: "run-demo" }, "Search");
    const list = element("ol", { id: "demo-output", className: "output" });
    button.onclick = async () => {
      const q = await embed(query.value);
      const ranked = corpus.map((c) => ({ ...c, score: c.vector.reduce((s, v, i) => s + v * q[i], 0) }))
        .sort((a, b) => b.score - a.score);
      list.replaceChildren(...ranked.map((r) => element("li", {}, `${r.score.toFixed(3)}  ${r.sentence}`)));
      root.dataset.ids = ranked.map((r) => SENTENCES.indexOf(r.sentence)).join(",");
    };
    root.append(element("h2", {}, "Semantic search"), query, button, list);
    return { kind, embed };
  }
  if (kind === "classes") {
    const pre = manifest.preprocessing;
    const canvas = element("canvas", { width: pre.width, height: pre.height, id: "image" });
    const ctx = canvas.getContext("2d");
    const gradient = ctx.createLinearGradient(0, 0, pre.width, pre.height);
    gradient.addColorStop(0, "#2a6"); gradient.addColorStop(1, "#fc3");
    ctx.fillStyle = gradient; ctx.fillRect(0, 0, pre.width, pre.height);
    const file = element("input", { type: "file", accept: "image/*" });
    const button = element("button", { id: "run-demo" }, "Classify");
    const list = element("ol", { id: "demo-output", className: "output" });
    file.onchange = async () => {
      const bitmap = await createImageBitmap(file.files[0]);
      ctx.drawImage(bitmap, 0, 0, pre.width, pre.height); // bilinear resize
    };
    button.onclick = async () => {
      const spec = model.artifact.inputs[0];
      const result = await model.session.run(feeds(model.artifact, { [spec.name]: imageInput(pre, canvas) }));
      const logits = Array.from(result[manifest.postprocessing.output].data);
      const top = logits.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0]).slice(0, 5);
      const labels = manifest.postprocessing.labels;
      list.replaceChildren(...top.map(([v, i]) => element("li", {}, `${labels[i] ?? i}  (${v.toFixed(2)})`)));
      root.dataset.ids = top.map(([, i]) => i).join(",");
    };
    root.append(element("h2", {}, "Classify"), canvas, file, button, list);
    return { kind };
  }
  root.append(element("p", {}, `No demo for task ${manifest.model.task}; the self-test above still runs.`));
  return { kind };
}
