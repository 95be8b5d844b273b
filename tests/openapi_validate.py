#!/usr/bin/python3
"""Checks an OpenAPI 3.1 document: valid against the official schema, and every $ref resolves.

    tests/openapi_validate.py SCHEMA.json DOCUMENT.json

Exits 0 when it is, 1 listing the errors, 2 on bad usage or unreadable files. Uses Debian's
python3-jsonschema (Draft 2020-12); run it with /usr/bin/python3.
"""
import json
import sys

try:
    import jsonschema
except ImportError:
    sys.exit("openapi_validate: python3-jsonschema is not installed (apt-get install python3-jsonschema)")

MAX_SHOWN = 25


def pointer(doc, ref):
    """What a local reference ("#/components/schemas/Task") points at, or KeyError."""
    if not ref.startswith("#"):
        raise KeyError("not a local reference")
    node = doc
    for part in ref[1:].split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node[part]
        else:
            raise KeyError(part)
    return node


def refs(node, where):
    """(location, ref) of every "$ref" string in the document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield where, value
            else:
                yield from refs(value, where + "/" + key.replace("~", "~0").replace("/", "~1"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from refs(value, "%s/%d" % (where, i))


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        with open(argv[1], encoding="utf-8") as f:
            schema = json.load(f)
        with open(argv[2], encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        print("openapi_validate: %s" % e, file=sys.stderr)
        return 2
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = ["schema: %s: %s" % ("/".join(str(p) for p in e.absolute_path) or "(root)", e.message)
              for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]
    for where, ref in refs(doc, "#"):
        try:
            pointer(doc, ref)
        except (KeyError, IndexError, ValueError):
            errors.append("$ref: %s: %s does not resolve" % (where, ref))
    for line in errors[:MAX_SHOWN]:
        print(line)
    if len(errors) > MAX_SHOWN:
        print("... and %d more" % (len(errors) - MAX_SHOWN))
    if errors:
        return 1
    print("valid OpenAPI %s document: %d paths, every $ref resolves" % (doc.get("openapi"), len(doc.get("paths", {}))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
