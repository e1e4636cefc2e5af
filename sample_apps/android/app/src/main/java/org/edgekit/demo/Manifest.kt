package org.edgekit.demo

import java.io.File
import kotlinx.serialization.SerialName
import kotlinx.serialization.Serializable
import kotlinx.serialization.json.Json

/** manifest.json of an edgekit bundle (schema_version 1, docs/bundle-manifest.schema.json). */
@Serializable
data class Manifest(
    @SerialName("schema_version") val schemaVersion: Int,
    @SerialName("edgekit_version") val edgekitVersion: String,
    val app: String,
    val model: Model,
    val artifacts: List<Artifact>,
    val preprocessing: Preprocessing,
    val postprocessing: Postprocessing,
    val golden: Golden,
)

@Serializable
data class Model(val name: String, val task: String, val parameters: Long)

@Serializable
data class Artifact(
    val format: String, // "executorch", "onnx" or "ort" in an Android bundle
    val path: String,
    val bytes: Long,
    val sha256: String,
    val runtime: Runtime,
    val inputs: List<TensorSpec>,
    val outputs: List<TensorSpec>,
    @SerialName("self_test") val selfTest: SelfTestSpec,
)

@Serializable
data class Runtime(val name: String, val version: String, val minimum: String)

@Serializable
data class TensorSpec(val name: String, val shape: List<Long>, val dtype: String)

@Serializable
data class SelfTestSpec(val tolerance: Tolerance)

@Serializable
data class Tolerance(
    @SerialName("max_rel") val maxRel: Double? = null,
    @SerialName("cosine_min") val cosineMin: Double? = null,
    @SerialName("top1_min") val top1Min: Double? = null,
)

@Serializable
data class Preprocessing(
    val kind: String, // "text", "image" or "none"
    @SerialName("seq_len") val seqLen: Int? = null,
    val tokenizer: String? = null, // "tokenizer.json" or "bytes"
    val files: List<String>? = null,
    @SerialName("vocab_size") val vocabSize: Int? = null,
    @SerialName("special_ids") val specialIds: Map<String, Int>? = null,
    val height: Int? = null,
    val width: Int? = null,
    val channels: Int? = null,
    val rescale: Double? = null,
    val mean: List<Double>? = null,
    val std: List<Double>? = null,
)

@Serializable
data class Postprocessing(
    val kind: String, // "next_token", "embedding", "classes", "fill_mask" or "none"
    val output: String,
    val labels: List<String>? = null,
)

@Serializable
data class Golden(val reference: Reference, val samples: List<Sample>)

@Serializable
data class Reference(val artifact: String, val runtime: String)

@Serializable
data class Sample(val inputs: List<TensorFile>, val outputs: List<TensorFile>)

@Serializable
data class TensorFile(val name: String, val path: String, val shape: List<Long>, val dtype: String)

/** A bundle folder on the device: its manifest, and files that cannot leave it. */
class EdgekitBundle(val root: File) {
    val manifest: Manifest

    init {
        val json = Json { ignoreUnknownKeys = true }
        manifest = json.decodeFromString(Manifest.serializer(), File(root, MANIFEST).readText())
        require(manifest.schemaVersion == 1) { "manifest schema_version ${manifest.schemaVersion}, this app reads 1" }
        val paths = manifest.artifacts.map { it.path } + manifest.preprocessing.files.orEmpty() +
            manifest.golden.samples.flatMap { s -> (s.inputs + s.outputs).map { it.path } }
        paths.forEach { file(it) }
    }

    /** root/path, refusing absolute paths, '..', hidden segments and symlinks out of the root. */
    fun file(path: String): File {
        val parts = path.split("/")
        require(path.isNotEmpty() && parts.all { SEGMENT.matches(it) }) { "path $path escapes the bundle" }
        val resolved = File(root, path).canonicalFile
        require(resolved.path.startsWith(root.canonicalPath + File.separator)) { "path $path escapes the bundle" }
        return resolved
    }

    companion object {
        const val MANIFEST = "manifest.json"
        private val SEGMENT = Regex("^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
    }
}
