package org.edgekit.demo

import java.nio.ByteBuffer
import java.nio.ByteOrder

/** A host tensor: golden vectors, inputs and outputs, values as doubles for comparison. */
class HostTensor(val shape: List<Long>, val dtype: String, val values: DoubleArray) {
    val count: Int get() = values.size

    fun longs(): LongArray = LongArray(count) { values[it].toLong() }
    fun ints(): IntArray = IntArray(count) { values[it].toInt() }
    fun floats(): FloatArray = FloatArray(count) { values[it].toFloat() }

    companion object {
        /** A golden tensor file: raw little-endian bytes in C order. */
        fun read(bundle: EdgekitBundle, file: TensorFile): HostTensor {
            val bytes = bundle.file(file.path).readBytes()
            val count = file.shape.fold(1L) { a, b -> a * b }.toInt()
            val buffer = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN)
            val size = when (file.dtype) {
                "float32", "int32" -> 4
                "float16" -> 2
                "int64" -> 8
                else -> error("unsupported dtype ${file.dtype} in ${file.path}")
            }
            require(bytes.size == count * size) { "${file.path}: not $count ${file.dtype} values" }
            val values = DoubleArray(count) {
                when (file.dtype) {
                    "float32" -> buffer.getFloat().toDouble()
                    "int32" -> buffer.getInt().toDouble()
                    "int64" -> buffer.getLong().toDouble()
                    else -> halfToFloat(buffer.getShort()).toDouble()
                }
            }
            return HostTensor(file.shape, file.dtype, values)
        }

        private fun halfToFloat(bits: Short): Float = android.util.Half.toFloat(bits)
    }
}
