package org.edgekit.demo

import ai.onnxruntime.OnnxTensor
import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtSession
import java.nio.FloatBuffer
import java.nio.IntBuffer
import java.nio.LongBuffer
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor

/** One loaded artifact: named inputs in, named outputs out. */
interface ModelRunner : AutoCloseable {
    val artifact: Artifact
    fun run(inputs: Map<String, HostTensor>): Map<String, HostTensor>
}

fun openRunner(bundle: EdgekitBundle, artifact: Artifact): ModelRunner = when (artifact.format) {
    "executorch" -> ExecuTorchRunner(bundle, artifact)
    "onnx", "ort" -> OrtRunner(bundle, artifact)
    else -> error("unsupported format ${artifact.format} on Android")
}

/** ExecuTorch (XNNPACK): the .pte's forward, inputs in the manifest's order. */
class ExecuTorchRunner(bundle: EdgekitBundle, override val artifact: Artifact) : ModelRunner {
    private val module = Module.load(bundle.file(artifact.path).absolutePath)

    override fun run(inputs: Map<String, HostTensor>): Map<String, HostTensor> {
        val values = artifact.inputs.map { spec ->
            val tensor = inputs[spec.name] ?: error("missing input ${spec.name}")
            val shape = spec.shape.toLongArray()
            EValue.from(
                when (spec.dtype) {
                    "int64" -> Tensor.fromBlob(tensor.longs(), shape)
                    "int32" -> Tensor.fromBlob(tensor.ints(), shape)
                    "float32" -> Tensor.fromBlob(tensor.floats(), shape)
                    else -> error("unsupported ExecuTorch input dtype ${spec.dtype}")
                }
            )
        }
        val outputs = module.forward(*values.toTypedArray())
        return artifact.outputs.mapIndexed { index, spec ->
            val data = outputs[index].toTensor().dataAsFloatArray
            spec.name to HostTensor(spec.shape, spec.dtype, DoubleArray(data.size) { data[it].toDouble() })
        }.toMap()
    }

    override fun close() = module.destroy()
}

/** ONNX Runtime Android on the CPU execution provider: the .ort (or .onnx) file. */
class OrtRunner(bundle: EdgekitBundle, override val artifact: Artifact) : ModelRunner {
    private val env = OrtEnvironment.getEnvironment()
    private val session: OrtSession = env.createSession(
        bundle.file(artifact.path).absolutePath,
        OrtSession.SessionOptions().apply { setIntraOpNumThreads(4) },
    )

    init {
        // The names the manifest promises must be the model's own.
        val missing = artifact.inputs.map { it.name } - session.inputNames
        require(missing.isEmpty()) { "${artifact.path} has no input ${missing.first()}" }
    }

    override fun run(inputs: Map<String, HostTensor>): Map<String, HostTensor> {
        val feeds = artifact.inputs.associate { spec ->
            val tensor = inputs[spec.name] ?: error("missing input ${spec.name}")
            val shape = spec.shape.toLongArray()
            spec.name to when (spec.dtype) {
                "int64" -> OnnxTensor.createTensor(env, LongBuffer.wrap(tensor.longs()), shape)
                "int32" -> OnnxTensor.createTensor(env, IntBuffer.wrap(tensor.ints()), shape)
                "float32" -> OnnxTensor.createTensor(env, FloatBuffer.wrap(tensor.floats()), shape)
                else -> error("unsupported ONNX Runtime input dtype ${spec.dtype}")
            }
        }
        try {
            session.run(feeds).use { result ->
                return artifact.outputs.associate { spec ->
                    val value = result.get(spec.name).get() as OnnxTensor
                    val buffer = value.floatBuffer
                    spec.name to HostTensor(spec.shape, spec.dtype, DoubleArray(buffer.remaining()) { buffer.get().toDouble() })
                }
            }
        } finally {
            feeds.values.forEach { it.close() }
        }
    }

    override fun close() = session.close()
}
