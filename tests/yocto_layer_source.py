"""Defect 13 of the first audit: bitbake's do_unpack[cleandirs] empties S whenever S lies outside
WORKDIR, and the recipes once set S to the user's checkout, so `bitbake updater` deleted it. Every
recipe of the layer must build the checkout through oe-core's externalsrc (which takes such
cleandirs entries off) and must never assign S from the tree the layer lives in.

Read with oelint-parser, as bitbake would expand the recipes' own text; the real bitbake run is
recorded in the closing note of the hardening issue until CI runs bitbake itself."""
import re
import sys
from pathlib import Path

from oelint_parser.cls_item import Inherit, Variable
from oelint_parser.cls_stash import Stash

layer = Path(__file__).resolve().parent.parent / "yocto-layer/meta-ab-updater"
failures = []

# oelint-parser hides inline python, so the assignments are read as text, in every file.
assignment = re.compile(r"^\s*(S|EXTERNALSRC)\s*[:?]?=\s*(.*)$")
externalsrc_names_tree = False
for path in sorted(layer.rglob("*")):
    if path.suffix not in (".bb", ".bbappend", ".bbclass", ".inc", ".conf"):
        continue
    for line in path.read_text().splitlines():
        match = assignment.match(line)
        if not match:
            continue
        name, value = match.groups()
        if name == "S" and "AB_UPDATER_TREE" in value:
            failures.append(f"{path.relative_to(layer)}: S is assigned from the checkout: {line}")
        if name == "EXTERNALSRC" and "AB_UPDATER_TREE" in value:
            externalsrc_names_tree = True
if not externalsrc_names_tree:
    failures.append("no EXTERNALSRC names the checkout (AB_UPDATER_TREE)")

recipes = sorted(layer.glob("recipes-*/*/*.bb"))
for recipe in recipes:
    stash = Stash(quiet=True)
    stash.AddFile(str(recipe))
    stash.Finalize()
    inherits = {
        cls
        for item in stash.GetItemsFor(classifier=Inherit.CLASSIFIER)
        for cls in item.get_items()
    }
    names = {v.VarName for v in stash.GetItemsFor(classifier=Variable.CLASSIFIER)}
    if "externalsrc" not in inherits or "EXTERNALSRC" not in names:
        failures.append(f"{recipe.relative_to(layer)}: does not build through externalsrc")

if failures:
    print("\n".join(failures))
    print("yocto layer: a recipe could let bitbake clean the user's checkout")
    sys.exit(1)
print(f"yocto layer: {len(recipes)} recipes build the checkout through externalsrc, none owns it as S")
