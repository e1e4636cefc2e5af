import Foundation

/// manifest.json of an edgekit bundle (schema_version 1, docs/bundle-manifest.schema.json).
/// Keys are snake_case in JSON, camelCase here (`JSONDecoder.keyDecodingStrategy`).
public struct Manifest: Decodable {
    public let schemaVersion: Int
    public let edgekitVersion: String
    public let app: String
    public let model: Model
    public let artifacts: [Artifact]
    public let preprocessing: Preprocessing
    public let postprocessing: Postprocessing
    public let golden: Golden

    public struct Model: Decodable {
        public let name: String
        public let task: String
        public let parameters: Int
    }

    public struct Artifact: Decodable {
        public let format: String  // "coreml" or "executorch" in an iOS bundle
        public let path: String
        public let bytes: Int
        public let sha256: String
        public let runtime: Runtime
        public let inputs: [TensorSpec]
        public let outputs: [TensorSpec]
        public let selfTest: SelfTestSpec
    }

    public struct Runtime: Decodable {
        public let name: String
        public let version: String
        public let minimum: String
    }

    public struct TensorSpec: Decodable {
        public let name: String
        public let shape: [Int]
        public let dtype: String
    }

    public struct SelfTestSpec: Decodable {
        public let tolerance: Tolerance
    }

    public struct Tolerance: Decodable {
        public let maxRel: Double?
        public let cosineMin: Double?
        public let top1Min: Double?
    }

    public struct Preprocessing: Decodable {
        public let kind: String  // "text", "image" or "none"
        public let seqLen: Int?
        public let tokenizer: String?  // "tokenizer.json" or "bytes"
        public let files: [String]?
        public let vocabSize: Int?
        public let specialIds: [String: Int]?
        public let height: Int?
        public let width: Int?
        public let channels: Int?
        public let rescale: Double?
        public let mean: [Double]?
        public let std: [Double]?
    }

    public struct Postprocessing: Decodable {
        public let kind: String  // "next_token", "embedding", "classes", "fill_mask", "none"
        public let output: String
        public let labels: [String]?
    }

    public struct Golden: Decodable {
        public let reference: Reference
        public let samples: [Sample]
    }

    public struct Reference: Decodable {
        public let artifact: String
        public let runtime: String
    }

    public struct Sample: Decodable {
        public let inputs: [TensorFile]
        public let outputs: [TensorFile]
    }

    public struct TensorFile: Decodable {
        public let name: String
        public let path: String
        public let shape: [Int]
        public let dtype: String
    }
}

public enum BundleError: LocalizedError {
    case unsafePath(String)
    case unsupported(String)
    case badFile(String)

    public var errorDescription: String? {
        switch self {
        case .unsafePath(let path): return "path \(path) escapes the bundle"
        case .unsupported(let what): return "unsupported: \(what)"
        case .badFile(let what): return what
        }
    }
}

/// A bundle folder inside the app (or downloaded to Documents): its manifest and files.
public struct EdgekitBundleFolder {
    public static let manifestName = "manifest.json"
    public let root: URL
    public let manifest: Manifest

    public init(root: URL) throws {
        self.root = root
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let data = try Data(contentsOf: root.appendingPathComponent(Self.manifestName))
        manifest = try decoder.decode(Manifest.self, from: data)
        guard manifest.schemaVersion == 1 else {
            throw BundleError.unsupported("manifest schema_version \(manifest.schemaVersion)")
        }
        // Every path the manifest names must stay in the bundle, as edgekit checks on write.
        var paths = manifest.artifacts.map(\.path) + (manifest.preprocessing.files ?? [])
        for sample in manifest.golden.samples {
            paths += (sample.inputs + sample.outputs).map(\.path)
        }
        for path in paths { _ = try url(path) }
    }

    /// root/path, refusing absolute paths, '..', hidden segments and symlinks out of the root.
    public func url(_ path: String) throws -> URL {
        let segment = try Regex("^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard !path.isEmpty, parts.allSatisfy({ $0.wholeMatch(of: segment) != nil }) else {
            throw BundleError.unsafePath(path)
        }
        let resolved = root.appendingPathComponent(path).resolvingSymlinksInPath()
        guard resolved.path.hasPrefix(root.resolvingSymlinksInPath().path + "/") else {
            throw BundleError.unsafePath(path)
        }
        return resolved
    }
}
