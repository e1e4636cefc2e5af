import CoreML
import Foundation

/// A tensor on the host: golden vectors, model inputs and outputs. Values are kept as Double
/// for comparison, with the dtype they travel in.
public struct HostTensor {
    public let shape: [Int]
    public let dtype: String
    public let values: [Double]

    public init(shape: [Int], dtype: String, values: [Double]) {
        self.shape = shape
        self.dtype = dtype
        self.values = values
    }

    /// A golden tensor file: raw little-endian bytes in C order (iPhones are little-endian).
    public init(file: Manifest.TensorFile, in bundle: EdgekitBundleFolder) throws {
        let data = try Data(contentsOf: try bundle.url(file.path))
        let count = file.shape.reduce(1, *)
        func read<T>(_ type: T.Type, _ convert: (T) -> Double) throws -> [Double] {
            guard data.count == count * MemoryLayout<T>.size else {
                throw BundleError.badFile("\(file.path): not \(count) \(file.dtype) values")
            }
            return data.withUnsafeBytes { raw in
                (0..<count).map { convert(raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self)) }
            }
        }
        switch file.dtype {
        case "float32": values = try read(Float.self) { Double($0) }
        case "float16": values = try read(Float16.self) { Double($0) }
        case "int64": values = try read(Int64.self) { Double($0) }
        case "int32": values = try read(Int32.self) { Double($0) }
        default: throw BundleError.unsupported("dtype \(file.dtype) in \(file.path)")
        }
        shape = file.shape
        dtype = file.dtype
    }

    /// The tensor as a Core ML input of the type the package declares (int32 ids, fp16/fp32).
    public func multiArray(as spec: Manifest.TensorSpec) throws -> MLMultiArray {
        let type: MLMultiArrayDataType
        switch spec.dtype {
        case "int32": type = .int32
        case "float16": type = .float16
        case "float32": type = .float32
        default: throw BundleError.unsupported("Core ML input dtype \(spec.dtype)")
        }
        let array = try MLMultiArray(shape: spec.shape.map { NSNumber(value: $0) }, dataType: type)
        for (index, value) in values.enumerated() { array[index] = NSNumber(value: value) }
        return array
    }

    public init(multiArray array: MLMultiArray, dtype: String) {
        shape = array.shape.map(\.intValue)
        self.dtype = dtype
        values = (0..<array.count).map { array[$0].doubleValue }
    }
}
