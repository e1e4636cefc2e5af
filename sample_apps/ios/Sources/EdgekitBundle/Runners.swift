import CoreML
import ExecuTorch
import Foundation

/// One loaded artifact: named inputs in, named outputs out.
public protocol ModelRunner {
    var artifact: Manifest.Artifact { get }
    func run(_ inputs: [String: HostTensor]) throws -> [String: HostTensor]
}

/// Opens the artifact in the runtime its format needs.
public func openRunner(_ artifact: Manifest.Artifact, in bundle: EdgekitBundleFolder) async throws -> ModelRunner {
    switch artifact.format {
    case "coreml": return try await CoreMLRunner(artifact: artifact, bundle: bundle)
    case "executorch": return try ExecuTorchRunner(artifact: artifact, bundle: bundle)
    default: throw BundleError.unsupported("format \(artifact.format) on iOS")
    }
}

/// Core ML: the .mlpackage is compiled on the device once (cached), then run on all compute
/// units (Neural Engine, GPU, CPU), in fp16 as the manifest's tolerance expects.
public final class CoreMLRunner: ModelRunner {
    public let artifact: Manifest.Artifact
    private let model: MLModel

    public init(artifact: Manifest.Artifact, bundle: EdgekitBundleFolder) async throws {
        self.artifact = artifact
        let package = try bundle.url(artifact.path)
        let cache = try FileManager.default.url(for: .cachesDirectory, in: .userDomainMask,
                                                appropriateFor: nil, create: true)
            .appendingPathComponent("\(artifact.sha256).mlmodelc")
        if !FileManager.default.fileExists(atPath: cache.path) {
            let compiled = try await MLModel.compileModel(at: package)
            try FileManager.default.moveItem(at: compiled, to: cache)
        }
        let configuration = MLModelConfiguration()
        configuration.computeUnits = .all
        model = try MLModel(contentsOf: cache, configuration: configuration)
        // The names the manifest promises must be the model's own.
        let declared = model.modelDescription.inputDescriptionsByName
        for spec in artifact.inputs where declared[spec.name] == nil {
            throw BundleError.badFile("\(artifact.path) has no input \(spec.name)")
        }
    }

    public func run(_ inputs: [String: HostTensor]) throws -> [String: HostTensor] {
        var features: [String: MLFeatureValue] = [:]
        for spec in artifact.inputs {
            guard let tensor = inputs[spec.name] else { throw BundleError.badFile("missing input \(spec.name)") }
            features[spec.name] = MLFeatureValue(multiArray: try tensor.multiArray(as: spec))
        }
        let result = try model.prediction(from: try MLDictionaryFeatureProvider(dictionary: features))
        var outputs: [String: HostTensor] = [:]
        for spec in artifact.outputs {
            guard let array = result.featureValue(for: spec.name)?.multiArrayValue else {
                throw BundleError.badFile("\(artifact.path) returned no \(spec.name)")
            }
            outputs[spec.name] = HostTensor(multiArray: array, dtype: spec.dtype)
        }
        return outputs
    }
}

/// ExecuTorch with XNNPACK: the .pte's `forward`, inputs in the manifest's order.
public final class ExecuTorchRunner: ModelRunner {
    public let artifact: Manifest.Artifact
    private let module: Module

    public init(artifact: Manifest.Artifact, bundle: EdgekitBundleFolder) throws {
        self.artifact = artifact
        module = Module(filePath: try bundle.url(artifact.path).path)
        try module.load("forward")
    }

    public func run(_ inputs: [String: HostTensor]) throws -> [String: HostTensor] {
        var values: [ValueConvertible] = []
        for spec in artifact.inputs {
            guard let tensor = inputs[spec.name] else { throw BundleError.badFile("missing input \(spec.name)") }
            switch spec.dtype {
            case "int64": values.append(Tensor<Int64>(tensor.values.map { Int64($0) }, shape: spec.shape))
            case "int32": values.append(Tensor<Int32>(tensor.values.map { Int32($0) }, shape: spec.shape))
            case "float32": values.append(Tensor<Float>(tensor.values.map { Float($0) }, shape: spec.shape))
            default: throw BundleError.unsupported("ExecuTorch input dtype \(spec.dtype)")
            }
        }
        let results = try module.forward(values)
        var outputs: [String: HostTensor] = [:]
        for (index, spec) in artifact.outputs.enumerated() {
            guard index < results.count, let tensor: Tensor<Float> = results[index].tensor() else {
                throw BundleError.badFile("\(artifact.path) returned no float output \(spec.name)")
            }
            outputs[spec.name] = HostTensor(shape: spec.shape, dtype: spec.dtype,
                                            values: tensor.scalars().map { Double($0) })
        }
        return outputs
    }
}
