"""App bundles: an export's artifacts for one app (ios, android, web), a manifest.json that
tells the app everything it needs (names, shapes, dtypes, runtime versions, tokenizer,
normalisation, labels), and golden vectors for the app's self-test."""

from __future__ import annotations

from edgekit.bundle.build import make_bundle, verify_bundle
from edgekit.bundle.manifest import APP_FORMATS, read_manifest

__all__ = ["APP_FORMATS", "make_bundle", "read_manifest", "verify_bundle"]
