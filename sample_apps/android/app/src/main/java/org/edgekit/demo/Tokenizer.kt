package org.edgekit.demo

import java.io.File
import kotlinx.serialization.json.Json
import kotlinx.serialization.json.JsonArray
import kotlinx.serialization.json.boolean
import kotlinx.serialization.json.int
import kotlinx.serialization.json.jsonArray
import kotlinx.serialization.json.jsonObject
import kotlinx.serialization.json.jsonPrimitive

/** Text to token ids and back: the bundle's tokenizer.json, or UTF-8 bytes when it has none. */
interface TextCodec {
    fun encode(text: String): List<Int>
    fun decode(ids: List<Int>): String

    companion object {
        fun open(bundle: EdgekitBundle): TextCodec {
            val pre = bundle.manifest.preprocessing
            val file = pre.files.orEmpty().firstOrNull { it.endsWith("/tokenizer.json") }
            return if (pre.tokenizer == "tokenizer.json" && file != null) ByteLevelBpe(bundle.file(file))
            else BytesCodec(pre.vocabSize ?: 256)
        }
    }
}

/** What edgekit's parity samples use for students without a tokenizer: UTF-8 bytes. */
class BytesCodec(private val vocabSize: Int) : TextCodec {
    override fun encode(text: String) = text.toByteArray().map { (it.toInt() and 0xff) % vocabSize }
    override fun decode(ids: List<Int>) = ids.filter { it < 256 }.map { it.toByte() }.toByteArray().decodeToString()
}

/** Byte-level BPE (GPT-2 / SmolLM2 family) read from tokenizer.json: added tokens split first,
 *  GPT-2 pre-tokenizer regex, bytes mapped to printable characters, merges by rank. */
class ByteLevelBpe(file: File) : TextCodec {
    private val vocab: Map<String, Int>
    private val ids: Map<Int, String>
    private val ranks: Map<Pair<String, String>, Int>
    private val added: Map<String, Int>
    private val special: Set<Int>
    private val byteToChar = bytesToUnicode()
    private val charToByte = byteToChar.entries.associate { (b, c) -> c to b }

    init {
        val root = Json.parseToJsonElement(file.readText()).jsonObject
        val model = root["model"]!!.jsonObject
        vocab = model["vocab"]!!.jsonObject.mapValues { it.value.jsonPrimitive.int }
        ranks = model["merges"]!!.jsonArray.mapIndexed { rank, merge ->
            val pair = if (merge is JsonArray) merge.map { it.jsonPrimitive.content }
            else merge.jsonPrimitive.content.split(" ", limit = 2)
            (pair[0] to pair[1]) to rank
        }.toMap()
        val addedTokens = root["added_tokens"]?.jsonArray.orEmpty().map { it.jsonObject }
        added = addedTokens.associate { it["content"]!!.jsonPrimitive.content to it["id"]!!.jsonPrimitive.int }
        special = addedTokens.filter { it["special"]?.jsonPrimitive?.boolean == true }
            .map { it["id"]!!.jsonPrimitive.int }.toSet()
        ids = vocab.entries.associate { (k, v) -> v to k } + added.entries.associate { (k, v) -> v to k }
    }

    override fun encode(text: String): List<Int> {
        val out = mutableListOf<Int>()
        val splitter = if (added.isEmpty()) null else Regex(added.keys.joinToString("|") { Regex.escape(it) })
        var start = 0
        for (match in splitter?.findAll(text).orEmpty()) {
            encodeOrdinary(text.substring(start, match.range.first), out)
            out += added.getValue(match.value)
            start = match.range.last + 1
        }
        encodeOrdinary(text.substring(start), out)
        return out
    }

    private fun encodeOrdinary(text: String, out: MutableList<Int>) {
        for (piece in PRETOKENIZE.findAll(text)) {
            val mapped = piece.value.toByteArray().joinToString("") { byteToChar.getValue(it.toInt() and 0xff).toString() }
            for (token in bpe(mapped)) out += vocab[token] ?: continue
        }
    }

    private fun bpe(word: String): List<String> {
        var parts = word.map { it.toString() }
        while (parts.size > 1) {
            val best = parts.zipWithNext().minByOrNull { ranks[it] ?: Int.MAX_VALUE } ?: break
            if (best !in ranks) break
            val merged = mutableListOf<String>()
            var i = 0
            while (i < parts.size) {
                if (i < parts.size - 1 && parts[i] == best.first && parts[i + 1] == best.second) {
                    merged += best.first + best.second; i += 2
                } else {
                    merged += parts[i]; i += 1
                }
            }
            parts = merged
        }
        return parts
    }

    override fun decode(ids: List<Int>): String {
        val bytes = ids.filter { it !in special }.mapNotNull { this.ids[it] }.joinToString("")
            .mapNotNull { charToByte[it]?.toByte() }.toByteArray()
        return bytes.decodeToString()
    }

    companion object {
        private val PRETOKENIZE =
            Regex("""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")

        /** GPT-2's reversible map from bytes to printable unicode characters. */
        private fun bytesToUnicode(): Map<Int, Char> {
            val printable = (33..126) + (161..172) + (174..255)
            var extra = 0
            return (0..255).associateWith { b ->
                if (b in printable) b.toChar() else (256 + extra++).toChar()
            }
        }
    }
}
