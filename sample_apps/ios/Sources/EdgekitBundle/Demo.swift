import Foundation
import Tokenizers

/// Text in, token ids out: the bundle's tokenizer.json, or UTF-8 bytes when it has none.
public struct TextCodec {
    private let tokenizer: Tokenizer?
    private let vocabSize: Int

    public init(bundle: EdgekitBundleFolder) async throws {
        let pre = bundle.manifest.preprocessing
        vocabSize = pre.vocabSize ?? 256
        if pre.tokenizer == "tokenizer.json", let first = pre.files?.first {
            let folder = try bundle.url(first).deletingLastPathComponent()
            tokenizer = try await AutoTokenizer.from(modelFolder: folder)
        } else {
            tokenizer = nil  // "bytes"
        }
    }

    public func encode(_ text: String) -> [Int] {
        tokenizer?.encode(text: text, addSpecialTokens: false) ?? Array(text.utf8).map { Int($0) % vocabSize }
    }

    public func decode(_ ids: [Int]) -> String {
        if let tokenizer { return tokenizer.decode(tokens: ids, skipSpecialTokens: true) }
        return String(decoding: ids.filter { $0 < 256 }.map { UInt8($0) }, as: UTF8.self)
    }
}

/// Token ids right-padded to the graph's fixed window, with the attention mask.
func window(_ ids: [Int], seqLen: Int, pad: Int) -> [String: HostTensor] {
    let context = Array(ids.suffix(seqLen))
    let padded = context + Array(repeating: pad, count: seqLen - context.count)
    let mask = Array(repeating: 1, count: context.count) + Array(repeating: 0, count: seqLen - context.count)
    return ["input_ids": HostTensor(shape: [1, seqLen], dtype: "int64", values: padded.map(Double.init)),
            "attention_mask": HostTensor(shape: [1, seqLen], dtype: "int64", values: mask.map(Double.init))]
}

/// Greedy generation with the full-window graph: the whole window runs per new token. A
/// decode (KV-cache) artifact in the manifest would take one token per step; the loop stays.
public func generate(prompt: String, runner: ModelRunner, codec: TextCodec, manifest: Manifest,
                     maxNewTokens: Int = 32) throws -> String {
    let pre = manifest.preprocessing
    let seqLen = pre.seqLen ?? runner.artifact.inputs[0].shape.last!
    let vocab = runner.artifact.outputs[0].shape.last!
    let eos = pre.specialIds?["eos"]
    var ids = codec.encode(prompt)
    var generated: [Int] = []
    for _ in 0..<maxNewTokens {
        let position = min(ids.count, seqLen) - 1
        let logits = try runner.run(window(ids, seqLen: seqLen, pad: pre.specialIds?["pad"] ?? 0))
        guard let values = logits[manifest.postprocessing.output]?.values else { break }
        let next = argmax(values, position * vocab, vocab)
        if next == eos { break }
        ids.append(next)
        generated.append(next)
    }
    return codec.decode(generated)
}

/// Mean-pooled, L2-normalised sentence embedding from an encoder's last_hidden_state.
public func embed(_ text: String, runner: ModelRunner, codec: TextCodec, manifest: Manifest) throws -> [Double] {
    let seqLen = manifest.preprocessing.seqLen ?? runner.artifact.inputs[0].shape.last!
    let ids = Array(codec.encode(text).prefix(seqLen))
    let hidden = runner.artifact.outputs[0].shape.last!
    let states = try runner.run(window(ids, seqLen: seqLen, pad: manifest.preprocessing.specialIds?["pad"] ?? 0))
    guard let values = states[manifest.postprocessing.output]?.values else { return [] }
    var vector = [Double](repeating: 0, count: hidden)
    for t in 0..<ids.count { for h in 0..<hidden { vector[h] += values[t * hidden + h] / Double(ids.count) } }
    let norm = max(vector.map { $0 * $0 }.reduce(0, +).squareRoot(), 1e-12)
    return vector.map { $0 / norm }
}

/// Semantic search: sentences ranked by cosine similarity to the query.
public func search(_ query: String, in sentences: [String], runner: ModelRunner, codec: TextCodec,
                   manifest: Manifest) throws -> [(String, Double)] {
    let q = try embed(query, runner: runner, codec: codec, manifest: manifest)
    return try sentences.map { sentence in
        let v = try embed(sentence, runner: runner, codec: codec, manifest: manifest)
        return (sentence, zip(q, v).map(*).reduce(0, +))
    }.sorted { $0.1 > $1.1 }
}
