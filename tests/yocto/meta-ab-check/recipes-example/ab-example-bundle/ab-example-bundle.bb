SUMMARY = "Update bundle of core-image-minimal, as the layer's README shows"
LICENSE = "MIT"

inherit ab_bundle

AB_BUNDLE_IMAGE = "core-image-minimal"
AB_BUNDLE_KEY = "${AB_CHECK_KEY}"
AB_BUNDLE_SECURITY_VERSION = "3"
