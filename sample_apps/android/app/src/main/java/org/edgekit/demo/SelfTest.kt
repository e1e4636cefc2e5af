package org.edgekit.demo

import java.io.File
import java.security.MessageDigest
import kotlin.math.abs
import kotlin.math.max
import kotlin.math.min
import kotlin.math.sqrt

data class SelfTestResult(
    val format: String,
    val passed: Boolean,
    val reason: String,
    val maxAbs: Double,
    val maxRel: Double,
    val cosineMin: Double,
    val top1Agreement: Double?,
    val msPerRun: Double,
)

/** Golden inputs through the runner; metrics as edgekit's parity (max_abs, max_rel = max
 *  |error| / max |golden|, cosine, top-1 on logits); verdict under the manifest's tolerance. */
fun runSelfTest(bundle: EdgekitBundle, runner: ModelRunner): SelfTestResult {
    val manifest = bundle.manifest
    val tolerance = runner.artifact.selfTest.tolerance
    var maxAbs = 0.0; var maxRel = 0.0; var cosineMin = 1.0; var agree = 0; var positions = 0
    var nanos = 0L
    val intact = sha256(bundle.file(runner.artifact.path)) == runner.artifact.sha256
    for (sample in manifest.golden.samples) {
        val inputs = sample.inputs.associate { it.name to HostTensor.read(bundle, it) }
        val start = System.nanoTime()
        val outputs = runner.run(inputs)
        nanos += System.nanoTime() - start
        for (file in sample.outputs) {
            val golden = HostTensor.read(bundle, file).values
            val actual = outputs[file.name]?.values ?: error("no output ${file.name}")
            require(actual.size == golden.size) { "output ${file.name} has ${actual.size} values, golden ${golden.size}" }
            if (actual.any { !it.isFinite() }) {
                return SelfTestResult(runner.artifact.format, false, "the model produced NaN or Inf",
                    Double.POSITIVE_INFINITY, Double.POSITIVE_INFINITY, 0.0, null, 0.0)
            }
            var peak = 0.0; var err = 0.0; var dot = 0.0; var na = 0.0; var nb = 0.0
            for (i in golden.indices) {
                err = max(err, abs(actual[i] - golden[i])); peak = max(peak, abs(golden[i]))
                dot += golden[i] * actual[i]; na += golden[i] * golden[i]; nb += actual[i] * actual[i]
            }
            maxAbs = max(maxAbs, err)
            maxRel = max(maxRel, err / max(peak, 1e-12))
            val norms = sqrt(na) * sqrt(nb)
            cosineMin = min(cosineMin, if (norms == 0.0) (if (na == nb) 1.0 else 0.0) else dot / norms)
            if (manifest.postprocessing.output == "logits") {
                val width = file.shape.last().toInt()
                for (row in golden.indices step width) {
                    if (argmax(golden, row, width) == argmax(actual, row, width)) agree++
                    positions++
                }
            }
        }
    }
    val top1 = if (positions > 0) agree.toDouble() / positions else null
    val misses = buildList {
        if (!intact) add("sha256 differs from the manifest")
        tolerance.maxRel?.let { if (maxRel > it) add("max_rel %.3g > %s".format(maxRel, it)) }
        tolerance.cosineMin?.let { if (cosineMin < it) add("cosine %.6f < %s".format(cosineMin, it)) }
        tolerance.top1Min?.let { limit -> top1?.let { if (it < limit) add("top-1 %.3f < %s".format(it, limit)) } }
    }
    return SelfTestResult(
        runner.artifact.format, misses.isEmpty(),
        if (misses.isEmpty()) "within the manifest's tolerance" else misses.joinToString("; "),
        maxAbs, maxRel, cosineMin, top1, nanos / 1e6 / manifest.golden.samples.size,
    )
}

fun argmax(values: DoubleArray, start: Int, width: Int): Int {
    var best = start
    for (i in start until start + width) if (values[i] > values[best]) best = i
    return best - start
}

/** sha256 of a file, streamed: a .pte of an LM is hundreds of MiB. */
fun sha256(file: File): String {
    val digest = MessageDigest.getInstance("SHA-256")
    file.inputStream().buffered(1 shl 20).use { input ->
        val buffer = ByteArray(1 shl 20)
        while (true) {
            val read = input.read(buffer)
            if (read < 0) break
            digest.update(buffer, 0, read)
        }
    }
    return digest.digest().joinToString("") { "%02x".format(it) }
}
