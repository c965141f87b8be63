"""The Yocto layer's partition names agree everywhere they matter: the variables the layer
defines (read with oelint-parser), the .wks layout, the updater's config template as the recipe
renders it, and the boot scripts in bootloader-hooks/ (which name root partitions root<group>)."""
import re
import sys
import tomllib
from pathlib import Path

from oelint_parser.cls_item import Variable
from oelint_parser.cls_stash import Stash

top = Path(__file__).resolve().parent.parent
layer = top / "yocto-layer/meta-ab-updater"
failures = []


def check(what, got, want):
    if got != want:
        failures.append(f"{what}: got {got!r}, want {want!r}")


stash = Stash(quiet=True)
stash.AddFile(str(layer / "conf/layer.conf"))
stash.Finalize()
parts = {
    v.VarName: v.VarValueStripped
    for v in stash.GetItemsFor(classifier=Variable.CLASSIFIER)
    if v.VarName.startswith("AB_PART_")
}
check("partition variables", sorted(parts), ["AB_PART_A", "AB_PART_B", "AB_PART_DATA", "AB_PART_ESP", "AB_PART_R"])

# The .wks names its partitions through those variables, each exactly once.
wks = (layer / "wic/ab-updater-gpt.wks.in").read_text()
named = re.findall(r"--part-name \$\{(AB_PART_[A-Z]+)\}", wks)
check(".wks partition names", sorted(named), sorted(parts))

# The recipe renders the config template with the same variables.
template = (layer / "recipes-core/updater/files/system.toml").read_text()
recipe = (layer / "recipes-core/updater/updater_0.1.0.bb").read_text()
rendered = template
for placeholder, var in re.findall(r"-e 's\|@([A-Z_]+)@\|\$\{([A-Z_]+)\}\|'", recipe):
    rendered = rendered.replace(f"@{placeholder}@", parts.get(var, f"<{var}>"))
config = tomllib.loads(rendered)
for group in "ABR":
    check(f"config slots.{group}.rootfs", config["slots"][group]["rootfs"].get("label"), parts[f"AB_PART_{group}"])

# The boot scripts boot root<group> and pass it as root=PARTLABEL=.
grub = (top / "bootloader-hooks/grub/grub.cfg").read_text()
uboot = (top / "bootloader-hooks/u-boot/boot.cmd").read_text()
check("grub.cfg root", "root=PARTLABEL=root$slot" in grub, True)
check("boot.cmd root", "root=PARTLABEL=root${updater_slot}" in uboot, True)
check("boot.cmd partitions", "part number ${updater_devtype} ${updater_devnum} root${updater_slot}" in uboot, True)
for group in "ABR":
    check(f"boot scripts' name for {group}", f"root{group}", parts[f"AB_PART_{group}"])

# grub.cfg finds the groups by partition number; the boot recipe's numbers follow the .wks order.
order = list(named)
boot_recipe = (layer / "recipes-bsp/ab-updater-boot/ab-updater-boot_0.1.0.bb").read_text()
for group in "ABR":
    if f"AB_PART_{group}" in order:
        number = order.index(f"AB_PART_{group}") + 1
        check(f"grub part_{group}", f"set part_{group}=gpt{number}" in boot_recipe, True)

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("yocto layer: partition names agree (.wks, config template, boot scripts)")
