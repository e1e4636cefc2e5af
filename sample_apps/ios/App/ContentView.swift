import EdgekitBundle
import SwiftUI

/// Loads the bundle shipped in the app (folder "EdgekitBundle"), runs the self-test of each
/// artifact (Core ML first, ExecuTorch as the option), then the demo the task calls for.
@MainActor
final class BundleModel: ObservableObject {
    static let folderName = "EdgekitBundle"
    @Published var title = "Loading the bundle…"
    @Published var results: [SelfTestResult] = []
    @Published var error: String?
    @Published var output = ""
    @Published var useExecuTorch = false
    var bundle: EdgekitBundleFolder?
    var runners: [String: ModelRunner] = [:]
    var codec: TextCodec?

    func load() async {
        do {
            guard let root = Bundle.main.url(forResource: Self.folderName, withExtension: nil) else {
                throw BundleError.badFile("no \(Self.folderName) folder in the app; see docs/bundle.md")
            }
            let bundle = try EdgekitBundleFolder(root: root)
            self.bundle = bundle
            let manifest = bundle.manifest
            title = "\(manifest.model.name) (\(manifest.model.task)), edgekit \(manifest.edgekitVersion)"
            for artifact in manifest.artifacts {
                let runner = try await openRunner(artifact, in: bundle)
                runners[artifact.format] = runner
                results.append(try runSelfTest(runner, bundle: bundle))
            }
            if manifest.preprocessing.kind == "text" { codec = try await TextCodec(bundle: bundle) }
        } catch {
            self.error = error.localizedDescription
        }
    }

    func runDemo(_ text: String) {
        guard let bundle, let codec,
              let runner = runners[useExecuTorch ? "executorch" : "coreml"] ?? runners.values.first else { return }
        do {
            switch bundle.manifest.postprocessing.kind {
            case "next_token":
                output = text + (try generate(prompt: text, runner: runner, codec: codec, manifest: bundle.manifest))
            case "embedding":
                output = try search(text, in: DemoSentences.all, runner: runner, codec: codec, manifest: bundle.manifest)
                    .map { String(format: "%.3f  %@", $0.1, $0.0) }.joined(separator: "\n")
            default:
                output = "No demo for task \(bundle.manifest.model.task)."
            }
        } catch {
            output = error.localizedDescription
        }
    }
}

enum DemoSentences {
    static let all = [
        "The train to the airport leaves every twenty minutes.",
        "Add a pinch of salt before the water boils.",
        "My phone battery dies before lunch.",
        "The museum is closed on Mondays.",
    ]
}

struct ContentView: View {
    @StateObject private var model = BundleModel()
    @State private var prompt = "The best way to learn is"

    var body: some View {
        NavigationStack {
            List {
                Section("Model") { Text(model.title).font(.footnote) }
                Section("Self-test") {
                    if let error = model.error {
                        Text("FAIL").font(.largeTitle.bold()).foregroundStyle(.red)
                        Text(error).font(.footnote)
                    }
                    ForEach(model.results, id: \.format) { result in
                        VStack(alignment: .leading) {
                            Text("\(result.format): \(result.passed ? "PASS" : "FAIL")")
                                .font(.title2.bold()).foregroundStyle(result.passed ? .green : .red)
                            Text(String(format: "max error %.3g (max_rel %.3g), cosine %.6f", result.maxAbs,
                                        result.maxRel, result.cosineMin)).font(.caption.monospaced())
                            Text(result.reason + String(format: "; %.1f ms per run", result.msPerRun)).font(.caption)
                        }
                    }
                }
                Section("Demo") {
                    Toggle("Use ExecuTorch (.pte) instead of Core ML", isOn: $model.useExecuTorch)
                    TextField("Prompt or query", text: $prompt, axis: .vertical)
                    Button("Run") { model.runDemo(prompt) }
                    Text(model.output).font(.body.monospaced())
                }
            }
            .navigationTitle("edgekit")
        }
        .task { await model.load() }
    }
}
