"""What `bitbake -e` (tests/yocto-bitbake.sh) shows of the layer's recipes: the variables the
layer's README and the docs promise, as bitbake itself expands them.

Usage: yocto_bitbake_env.py WORK LAYER, where WORK/env-<target> holds `bitbake -e <target>`."""
import ast
import re
import sys
import tomllib
from pathlib import Path

work, layer = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
tree = layer.parent.parent
failures = []


def env(target):
    """The variables of one `bitbake -e` dump, as bitbake exported them (unquoted)."""
    values = {}
    for line in (work / f"env-{target}").read_text().splitlines():
        match = re.match(r'^(?:export )?([A-Za-z0-9_:+\-\.${}/]+)="(.*)"$', line)
        if match:
            values[match.group(1)] = match.group(2).replace('\\"', '"').replace("\\$", "$")
    return values


def check(what, got, want):
    if got != want:
        failures.append(f"{what}: got {got!r}, want {want!r}")


lock = tomllib.loads((tree / "Cargo.lock").read_text())
registry = "registry+https://github.com/rust-lang/crates.io-index"
locked = sorted(f"{p['name']}/{p['version']}" for p in lock["package"] if p.get("source") == registry)

for recipe, package in (("updater", "updater"), ("libabupdater", "updater-ffi"), ("bundle-tool", "bundle-tool"),
                        ("bundle-tool-native", "bundle-tool")):
    e = env(recipe)
    crates = sorted(re.findall(r"crate://crates\.io/([^/\s]+/[^\s;]+)", e.get("SRC_URI", "")))
    check(f"{recipe}: SRC_URI crates = Cargo.lock", crates, locked)
    # Built from the checkout through externalsrc, never from S inside it, into WORKDIR.
    check(f"{recipe}: EXTERNALSRC", e.get("EXTERNALSRC"), str(tree))
    check(f"{recipe}: B under WORKDIR", e.get("B", "").startswith(e.get("WORKDIR", "?")), True)
    check(f"{recipe}: cargo package", e.get("CARGO_BUILD_FLAGS", "").split("--package")[-1].split()[0:1], [package])

updater = env("updater")
check("updater: SYSTEMD_SERVICE", updater.get("SYSTEMD_SERVICE:updater"), "updater-data.service updater-boot-check.service updater.service")
check("updater: UPDATER_BOOTLOADER", updater.get("UPDATER_BOOTLOADER"), "grub")
check("updater: UPDATER_STATE_DIR", updater.get("UPDATER_STATE_DIR"), "/data/updater")
check("updater: CONFFILES", updater.get("CONFFILES:updater"), "/etc/updater/system.toml")
check("libabupdater: RDEPENDS", "updater" in env("libabupdater").get("RDEPENDS:libabupdater", "").split(), True)
check("bundle-tool-native: a native recipe", "class-native" in env("bundle-tool-native").get("OVERRIDES", "").split(":"), True)

boot = env("ab-updater-boot")
check("ab-updater-boot: initial tries", boot.get("AB_BOOT_INITIAL_TRIES"), "2")
check("ab-updater-boot: grub-native", "grub-native" in boot.get("DEPENDS", "").split(), True)

# The bundle recipe of the README: the image's root filesystem in, bundle-tool-native to make it.
bundle = env("ab-example-bundle")
check("bundle: AB_BUNDLE_IMAGE", bundle.get("AB_BUNDLE_IMAGE"), "core-image-minimal")
check("bundle: AB_BUNDLE_KEY", bundle.get("AB_BUNDLE_KEY"), str(work / "keys/check.key"))
check("bundle: AB_BUNDLE_COMPATIBLE", bundle.get("AB_BUNDLE_COMPATIBLE"), "qemux86-64")
check("bundle: AB_BUNDLE_SECURITY_VERSION", bundle.get("AB_BUNDLE_SECURITY_VERSION"), "3")
check("bundle: AB_BUNDLE_NAME", bundle.get("AB_BUNDLE_NAME"),
      f"core-image-minimal-qemux86-64-{bundle.get('DISTRO_VERSION')}")
depends = ast.literal_eval(bundle.get("_task_deps", "{}")).get("depends", {}).get("do_bundle", "").split()
check("bundle: waits for the image", "core-image-minimal:do_image_complete" in depends, True)
check("bundle: uses bundle-tool-native", "bundle-tool-native:do_populate_sysroot" in depends, True)

# The image with the layer's .wks: bitbake finds it in the layer, and its partitions are named
# with the layer's AB_PART_* values, which the updater's config uses too.
image = env("core-image-minimal")
wks = image.get("WKS_FILE_CHECKSUM", "").split(":")[0]
check("image: the .wks bitbake found", wks, str(layer / "wic/ab-updater-gpt.wks.in"))
names = []
if Path(wks).is_file():
    names = [image.get(var, f"<{var}>") for var in re.findall(r"--part-name \$\{(AB_PART_[A-Z]+)\}", Path(wks).read_text())]
    check("image: .wks partition names", names, ["esp", "rootA", "rootB", "rootR", "data"])
for group in "ABR":
    check(f"updater: AB_PART_{group} = image's", updater.get(f"AB_PART_{group}"), image.get(f"AB_PART_{group}"))

if failures:
    print("\n".join(failures))
    sys.exit(1)
print(f"yocto bitbake: bitbake -e shows the promised variables ({len(locked)} crates, SYSTEMD_SERVICE, "
      f".wks partitions {', '.join(names)}, the bundle class's inputs)")
