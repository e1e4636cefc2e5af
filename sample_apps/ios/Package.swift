// swift-tools-version:5.9
// EdgekitBundle: reads an edgekit bundle (manifest.json, golden vectors) and runs it with
// Core ML or ExecuTorch. The app in App/ (project.yml, XcodeGen) links this library.
import PackageDescription

let package = Package(
    name: "EdgekitBundle",
    // Core ML .mlpackage files from edgekit target iOS 18 (manifest: runtime.minimum).
    platforms: [.iOS(.v18), .macOS(.v15)],
    products: [
        .library(name: "EdgekitBundle", targets: ["EdgekitBundle"]),
    ],
    dependencies: [
        // ExecuTorch's prebuilt runtime: the branch matches the executorch release that wrote
        // the .pte (manifest: artifacts[].runtime.version for format "executorch").
        .package(url: "https://github.com/pytorch/executorch.git", branch: "swiftpm-1.5.1"),
        // tokenizer.json of LM and encoder bundles.
        .package(url: "https://github.com/huggingface/swift-transformers.git",
                 .upToNextMajor(from: "1.0.0")),
    ],
    targets: [
        .target(
            name: "EdgekitBundle",
            dependencies: [
                .product(name: "executorch", package: "executorch"),
                .product(name: "backend_xnnpack", package: "executorch"),
                .product(name: "kernels_optimized", package: "executorch"),
                .product(name: "Tokenizers", package: "swift-transformers"),
            ],
            // ExecuTorch registers backends and kernels in static initialisers.
            linkerSettings: [.unsafeFlags(["-Wl,-all_load"])]
        ),
    ]
)
