SUMMARY = "A/B image updater: creates, signs and verifies update bundles"
DESCRIPTION = "bundle-tool turns images into one signed, zstd-compressed bundle; used on the \
               build host by the ab_bundle class."
SECTION = "devel"

require recipes-core/updater/updater.inc

CARGO_PACKAGE = "bundle-tool"
CARGO_SRC_DIR = "bundle-tool"

BBCLASSEXTEND = "native"
