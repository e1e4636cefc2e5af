package org.edgekit.demo

import kotlin.math.sqrt

/** Token ids right-padded to the graph's fixed window, with the attention mask. */
fun window(ids: List<Int>, seqLen: Int, pad: Int): Map<String, HostTensor> {
    val context = ids.takeLast(seqLen)
    val shape = listOf(1L, seqLen.toLong())
    val padded = DoubleArray(seqLen) { i -> (if (i < context.size) context[i] else pad).toDouble() }
    val mask = DoubleArray(seqLen) { i -> if (i < context.size) 1.0 else 0.0 }
    return mapOf("input_ids" to HostTensor(shape, "int64", padded), "attention_mask" to HostTensor(shape, "int64", mask))
}

/** Greedy generation with the full-window graph: the whole window runs per new token. A
 *  decode (KV-cache) artifact in the manifest would take one token per step; the loop stays. */
fun generate(manifest: Manifest, runner: ModelRunner, codec: TextCodec, prompt: String, maxNewTokens: Int = 32): String {
    val pre = manifest.preprocessing
    val seqLen = pre.seqLen ?: runner.artifact.inputs[0].shape.last().toInt()
    val vocab = runner.artifact.outputs[0].shape.last().toInt()
    val eos = pre.specialIds?.get("eos")
    val ids = codec.encode(prompt).toMutableList()
    val generated = mutableListOf<Int>()
    repeat(maxNewTokens) {
        val position = minOf(ids.size, seqLen) - 1
        val logits = runner.run(window(ids, seqLen, pre.specialIds?.get("pad") ?: 0))
        val next = argmax(logits.getValue(manifest.postprocessing.output).values, position * vocab, vocab)
        if (next == eos) return codec.decode(generated)
        ids += next
        generated += next
    }
    return codec.decode(generated)
}

/** Mean-pooled, L2-normalised sentence embedding from an encoder's last_hidden_state. */
fun embed(manifest: Manifest, runner: ModelRunner, codec: TextCodec, text: String): DoubleArray {
    val seqLen = manifest.preprocessing.seqLen ?: runner.artifact.inputs[0].shape.last().toInt()
    val ids = codec.encode(text).take(seqLen)
    val hidden = runner.artifact.outputs[0].shape.last().toInt()
    val states = runner.run(window(ids, seqLen, manifest.preprocessing.specialIds?.get("pad") ?: 0))
        .getValue(manifest.postprocessing.output).values
    val vector = DoubleArray(hidden)
    for (t in ids.indices) for (h in 0 until hidden) vector[h] += states[t * hidden + h] / ids.size
    val norm = sqrt(vector.sumOf { it * it }).coerceAtLeast(1e-12)
    return DoubleArray(hidden) { vector[it] / norm }
}

val DEMO_SENTENCES = listOf(
    "The train to the airport leaves every twenty minutes.",
    "Add a pinch of salt before the water boils.",
    "My phone battery dies before lunch.",
    "The museum is closed on Mondays.",
)

/** Semantic search: sentences ranked by cosine similarity to the query. */
fun search(manifest: Manifest, runner: ModelRunner, codec: TextCodec, query: String): List<Pair<String, Double>> {
    val q = embed(manifest, runner, codec, query)
    return DEMO_SENTENCES.map { s ->
        val v = embed(manifest, runner, codec, s)
        s to q.indices.sumOf { q[it] * v[it] }
    }.sortedByDescending { it.second }
}
