import CryptoKit
import Foundation

/// The outcome of running the golden inputs and comparing with the golden outputs.
public struct SelfTestResult {
    public let format: String
    public let passed: Bool
    public let reason: String
    public let maxAbs: Double
    public let maxRel: Double
    public let cosineMin: Double
    public let top1Agreement: Double?
    public let msPerRun: Double
}

/// Golden inputs through the runner; metrics as edgekit's parity (max_abs, max_rel = max
/// |error| / max |golden|, cosine, top-1 on logits); verdict under the manifest's tolerance.
public func runSelfTest(_ runner: ModelRunner, bundle: EdgekitBundleFolder) throws -> SelfTestResult {
    let manifest = bundle.manifest
    let tolerance = runner.artifact.selfTest.tolerance
    var maxAbs = 0.0, maxRel = 0.0, cosineMin = 1.0, agree = 0, positions = 0
    var elapsed = 0.0
    let intact = try sha256(of: bundle.url(runner.artifact.path)) == runner.artifact.sha256
    for sample in manifest.golden.samples {
        var inputs: [String: HostTensor] = [:]
        for file in sample.inputs { inputs[file.name] = try HostTensor(file: file, in: bundle) }
        let start = Date()
        let outputs = try runner.run(inputs)
        elapsed += Date().timeIntervalSince(start)
        for file in sample.outputs {
            let golden = try HostTensor(file: file, in: bundle).values
            guard let actual = outputs[file.name]?.values, actual.count == golden.count else {
                throw BundleError.badFile("output \(file.name) has the wrong size")
            }
            if actual.contains(where: { !$0.isFinite }) {
                return SelfTestResult(format: runner.artifact.format, passed: false,
                                      reason: "the model produced NaN or Inf", maxAbs: .infinity,
                                      maxRel: .infinity, cosineMin: 0, top1Agreement: nil, msPerRun: 0)
            }
            var peak = 0.0, err = 0.0, dot = 0.0, na = 0.0, nb = 0.0
            for (g, a) in zip(golden, actual) {
                err = max(err, abs(a - g)); peak = max(peak, abs(g))
                dot += g * a; na += g * g; nb += a * a
            }
            maxAbs = max(maxAbs, err)
            maxRel = max(maxRel, err / max(peak, 1e-12))
            let norms = na.squareRoot() * nb.squareRoot()
            cosineMin = min(cosineMin, norms == 0 ? (na == nb ? 1 : 0) : dot / norms)
            if manifest.postprocessing.output == "logits", let width = file.shape.last {
                for row in stride(from: 0, to: golden.count, by: width) {
                    agree += argmax(golden, row, width) == argmax(actual, row, width) ? 1 : 0
                    positions += 1
                }
            }
        }
    }
    let top1 = positions > 0 ? Double(agree) / Double(positions) : nil
    var misses: [String] = []
    if !intact { misses.append("sha256 differs from the manifest") }
    if let limit = tolerance.maxRel, maxRel > limit { misses.append("max_rel \(maxRel) > \(limit)") }
    if let limit = tolerance.cosineMin, cosineMin < limit { misses.append("cosine \(cosineMin) < \(limit)") }
    if let limit = tolerance.top1Min, let top1, top1 < limit { misses.append("top-1 \(top1) < \(limit)") }
    return SelfTestResult(format: runner.artifact.format, passed: misses.isEmpty,
                          reason: misses.isEmpty ? "within the manifest's tolerance" : misses.joined(separator: "; "),
                          maxAbs: maxAbs, maxRel: maxRel, cosineMin: cosineMin, top1Agreement: top1,
                          msPerRun: 1000 * elapsed / Double(manifest.golden.samples.count))
}

public func argmax(_ values: [Double], _ start: Int, _ width: Int) -> Int {
    var best = start
    for index in start..<(start + width) where values[index] > values[best] { best = index }
    return best - start
}

/// sha256 of a file, or of an .mlpackage folder as edgekit computes it: each file's relative
/// path then its bytes, in sorted path order.
public func sha256(of url: URL) throws -> String {
    var hasher = SHA256()
    var isFolder: ObjCBool = false
    FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder)
    if isFolder.boolValue {
        let files = (FileManager.default.enumerator(at: url, includingPropertiesForKeys: [.isRegularFileKey])?
            .compactMap { $0 as? URL } ?? [])
            .filter { (try? $0.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true }
            .map { String($0.standardizedFileURL.path.dropFirst(url.standardizedFileURL.path.count + 1)) }
            .sorted()
        for relative in files {
            hasher.update(data: Data(relative.utf8))
            hasher.update(data: try Data(contentsOf: url.appendingPathComponent(relative)))
        }
    } else {
        hasher.update(data: try Data(contentsOf: url, options: .mappedIfSafe))
    }
    return hasher.finalize().map { String(format: "%02x", $0) }.joined()
}
