plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
    id("org.jetbrains.kotlin.plugin.serialization")
}

android {
    namespace = "org.edgekit.demo"
    compileSdk = 35
    defaultConfig {
        applicationId = "org.edgekit.demo"
        minSdk = 26
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
        ndk { abiFilters += listOf("arm64-v8a", "x86_64") }
    }
    // Models and golden vectors are read as they are: never compress them in the APK.
    androidResources { noCompress += listOf("pte", "onnx", "ort", "bin", "json") }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions { jvmTarget = "17" }
}

dependencies {
    // The runtimes the bundle's manifest names (artifacts[].runtime.version): the .pte needs
    // the ExecuTorch release that wrote it, the .ort the ONNX Runtime release that converted it.
    implementation("org.pytorch:executorch-android:1.5.1")
    implementation("com.microsoft.onnxruntime:onnxruntime-android:1.32.0")
    implementation("org.jetbrains.kotlinx:kotlinx-serialization-json:1.7.3")
}
