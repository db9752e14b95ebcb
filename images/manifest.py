#!/usr/bin/env python3
"""Reads images/images.toml, the one source of truth for sandscore's images.

  manifest.py table           print the README image table
  manifest.py check README    exit 1 when README's table differs from the manifest
  manifest.py write README    replace README's table with the generated one
  manifest.py list            name tag dockerfile base framework-version backends size-aim heavy|light, one image a line
  manifest.py get NAME KEY    one field of one image
"""
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- image-table:begin (generated from images/images.toml by `make readme-table`) -->"
END = "<!-- image-table:end -->"


def load():
    with open(ROOT / "images" / "images.toml", "rb") as f:
        return tomllib.load(f)


def table(m):
    rows = [
        "| image | framework | version | CPU/GPU | pre-installed | base |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for i in m["image"]:
        rows.append(
            f"| `{i['name']}:{i['tag']}` | {i['framework']} | {i['framework_version']} | "
            f"{i['device'].upper()} | {', '.join(i['preinstalled'])} | `{i['base']}` |"
        )
    return "\n".join(rows)


def section(text):
    if BEGIN not in text or END not in text:
        sys.exit("README has no image-table markers")
    head, rest = text.split(BEGIN, 1)
    body, tail = rest.split(END, 1)
    return head, body.strip(), tail


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else "table"
    m = load()
    if cmd == "table":
        print(table(m))
    elif cmd == "list":
        for i in m["image"]:
            print(i["name"], i["tag"], i["dockerfile"], i["base"], i["framework_version"].split()[-1],
                  ",".join(i["backends"]) or "-", i["size_aim_mb"], "heavy" if i.get("heavy") else "light")
    elif cmd in ("check", "write"):
        readme = Path(sys.argv[2])
        head, body, tail = section(readme.read_text())
        want = table(m)
        if cmd == "write":
            readme.write_text(f"{head}{BEGIN}\n{want}\n{END}{tail}")
        elif body != want:
            print("README image table differs from images/images.toml; run `make readme-table`", file=sys.stderr)
            print(f"--- README\n{body}\n--- manifest\n{want}", file=sys.stderr)
            sys.exit(1)
        else:
            print("README image table matches images/images.toml")
    elif cmd == "get":
        image = next(i for i in m["image"] if i["name"] == sys.argv[2])
        print(image.get(sys.argv[3], False))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
