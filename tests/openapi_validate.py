#!/usr/bin/python3
"""Checks an OpenAPI 3.1 document: valid against a schema of such documents, every $ref resolves,
and the rules of the specification a JSON Schema cannot state hold (see rules()).

    tests/openapi_validate.py SCHEMA.json DOCUMENT.json

SCHEMA is tests/openapi/oas-3.1.schema.json (see tests/openapi/README.md) or another JSON Schema
(Draft 2020-12) of OpenAPI 3.1 documents. Exits 0 when it is, 1 listing the errors, 2 on bad
usage, unreadable files, or a schema that is not one or refers to what is not at hand (nothing
is fetched). Uses Debian's python3-jsonschema; run it with /usr/bin/python3.
"""
import json
import re
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


METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def deref(doc, node):
    """node, or what its local $ref points at (None when that does not resolve)."""
    seen = 0
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and seen < 16:
        try:
            node = pointer(doc, node["$ref"])
        except (KeyError, IndexError, ValueError):
            return None
        seen += 1
    return node


def rules(doc):
    """What the specification requires in words: operationIds and tag names are unique; a
    parameter list names each (name, in) once; the path parameters of each operation are the
    path's template expressions."""
    ids = {}
    for section in ("paths", "webhooks"):
        items = doc.get(section)
        for path, item in (items.items() if isinstance(items, dict) else ()):
            item = deref(doc, item)
            if not isinstance(item, dict) or path.startswith("x-"):
                continue
            where = "%s/%s" % (section, path)
            common = params(doc, item.get("parameters"), where + "/parameters")
            yield from common[1]
            template = set(re.findall(r"\{([^}/]+)\}", path)) if section == "paths" else set()
            for method in METHODS:
                op = item.get(method)
                if not isinstance(op, dict):
                    continue
                own, errors = params(doc, op.get("parameters"), "%s/%s/parameters" % (where, method))
                yield from errors
                declared = {name for name, loc in list(common[0]) + list(own) if loc == "path"}
                for name in sorted(template - declared):
                    yield "spec: %s/%s: path parameter {%s} is not declared" % (where, method, name)
                for name in sorted(declared - template):
                    yield "spec: %s/%s: path parameter \"%s\" is not in the path" % (where, method, name)
                op_id = op.get("operationId")
                if isinstance(op_id, str):
                    if op_id in ids:
                        yield "spec: %s/%s: operationId \"%s\" is %s's too" % (where, method, op_id, ids[op_id])
                    ids.setdefault(op_id, "%s/%s" % (where, method))
    names = set()
    for i, tag in enumerate(doc.get("tags") if isinstance(doc.get("tags"), list) else ()):
        name = tag.get("name") if isinstance(tag, dict) else None
        if name in names:
            yield "spec: tags/%d: tag \"%s\" is listed twice" % (i, name)
        names.add(name)


def params(doc, listed, where):
    """((name, in) of each parameter of a list, [errors for those listed twice])."""
    found, errors = {}, []
    for i, p in enumerate(listed if isinstance(listed, list) else ()):
        p = deref(doc, p)
        if not isinstance(p, dict) or not isinstance(p.get("name"), str):
            continue
        key = (p["name"], p.get("in"))
        if key in found:
            errors.append("spec: %s/%d: parameter \"%s\" in %s is listed twice (also %d)" % (where, i, key[0], key[1], found[key]))
        found.setdefault(key, i)
    return found, errors


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
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
        validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
        found = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    except jsonschema.exceptions.SchemaError as e:
        print("openapi_validate: %s is not a JSON Schema: %s" % (argv[1], e.message), file=sys.stderr)
        return 2
    except jsonschema.exceptions.RefResolutionError as e:
        print("openapi_validate: %s refers to what is not at hand: %s" % (argv[1], e), file=sys.stderr)
        return 2
    errors = ["schema: %s: %s" % ("/".join(str(p) for p in e.absolute_path) or "(root)", e.message)
              for e in found]
    for where, ref in refs(doc, "#"):
        try:
            pointer(doc, ref)
        except (KeyError, IndexError, ValueError):
            errors.append("$ref: %s: %s does not resolve" % (where, ref))
    errors.extend(rules(doc))
    for line in errors[:MAX_SHOWN]:
        print(line)
    if len(errors) > MAX_SHOWN:
        print("... and %d more" % (len(errors) - MAX_SHOWN))
    if errors:
        return 1
    paths = [p for p in doc.get("paths", {}) if p.startswith("/")]
    print("valid OpenAPI %s document: %d paths, every $ref resolves" % (doc.get("openapi"), len(paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
