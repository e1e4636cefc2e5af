package org.edgekit.demo

import android.app.Activity
import android.graphics.Color
import android.os.Bundle
import android.widget.Button
import android.widget.EditText
import android.widget.LinearLayout
import android.widget.ScrollView
import android.widget.TextView
import java.io.File

/**
 * Loads an edgekit bundle, runs the self-test of every artifact (ExecuTorch .pte, ONNX Runtime
 * .ort/.onnx) and offers the demo its task calls for.
 *
 * Where the bundle comes from: `adb push` to getExternalFilesDir(null)/bundle (large LMs), or
 * the app's assets/bundle folder, copied to internal storage on first launch (the runtimes
 * load files by path).
 */
class MainActivity : Activity() {
    private lateinit var log: LinearLayout
    private val runners = mutableMapOf<String, ModelRunner>()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        log = LinearLayout(this).apply { orientation = LinearLayout.VERTICAL; setPadding(32, 48, 32, 32) }
        setContentView(ScrollView(this).apply { addView(log) })
        line("edgekit", 24f)
        Thread {
            try {
                val bundle = EdgekitBundle(bundleFolder())
                val manifest = bundle.manifest
                runOnUiThread { line("${manifest.model.name} (${manifest.model.task}), edgekit ${manifest.edgekitVersion}", 13f) }
                for (artifact in manifest.artifacts) {
                    val runner = openRunner(bundle, artifact)
                    runners[artifact.format] = runner
                    val result = runSelfTest(bundle, runner)
                    runOnUiThread { show(result) }
                }
                runOnUiThread { demo(bundle) }
            } catch (e: Exception) {
                runOnUiThread {
                    line("FAIL", 32f, Color.rgb(164, 14, 38))
                    line(e.message ?: e.toString(), 13f)
                }
            }
        }.start()
    }

    private fun bundleFolder(): File {
        val pushed = File(getExternalFilesDir(null), BUNDLE)
        if (File(pushed, EdgekitBundle.MANIFEST).isFile) return pushed
        val copied = File(filesDir, BUNDLE)
        if (!File(copied, EdgekitBundle.MANIFEST).isFile) copyAssets(BUNDLE, copied)
        return copied
    }

    private fun copyAssets(path: String, dest: File) {
        val children = assets.list(path).orEmpty()
        if (children.isEmpty()) {
            dest.parentFile?.mkdirs()
            assets.open(path).use { input -> dest.outputStream().use { input.copyTo(it) } }
            return
        }
        dest.mkdirs()
        for (child in children) copyAssets("$path/$child", File(dest, child))
    }

    private fun show(result: SelfTestResult) {
        val color = if (result.passed) Color.rgb(17, 99, 41) else Color.rgb(164, 14, 38)
        line("${result.format}: ${if (result.passed) "PASS" else "FAIL"}", 28f, color)
        line("max error %.3g (max_rel %.3g), cosine %.6f%s".format(result.maxAbs, result.maxRel, result.cosineMin,
            result.top1Agreement?.let { ", top-1 %.1f%%".format(100 * it) } ?: ""), 13f)
        line("${result.reason}; %.1f ms per run".format(result.msPerRun), 12f)
    }

    private fun demo(bundle: EdgekitBundle) {
        val manifest = bundle.manifest
        val runner = runners["executorch"] ?: runners.values.firstOrNull() ?: return
        if (manifest.preprocessing.kind != "text") return
        val codec = TextCodec.open(bundle)
        val input = EditText(this).apply { setText("The best way to learn is") }
        val output = TextView(this)
        val button = Button(this).apply { text = if (manifest.postprocessing.kind == "embedding") "Search" else "Generate" }
        button.setOnClickListener {
            val text = input.text.toString()
            Thread {
                val shown = when (manifest.postprocessing.kind) {
                    "next_token" -> text + generate(manifest, runner, codec, text)
                    "embedding" -> search(manifest, runner, codec, text).joinToString("\n") { "%.3f  %s".format(it.second, it.first) }
                    else -> "No demo for task ${manifest.model.task}"
                }
                runOnUiThread { output.text = shown }
            }.start()
        }
        log.addView(input); log.addView(button); log.addView(output)
    }

    private fun line(text: String, size: Float, color: Int = Color.DKGRAY) {
        log.addView(TextView(this).apply { this.text = text; textSize = size; setTextColor(color) })
    }

    override fun onDestroy() {
        runners.values.forEach { it.close() }
        super.onDestroy()
    }

    companion object {
        const val BUNDLE = "bundle"
    }
}
