"""The panel's shared scripts: what a module exports is used by some page."""

import re
from pathlib import Path

from helpers import PROJECT

STATIC_JS = PROJECT / "webpanel" / "static" / "js"
TEMPLATES = PROJECT / "webpanel" / "templates"
MODULE_RE = re.compile(r"^window\.(\w+) = \(function \(\) \{", re.M)
EXPORTS_RE = re.compile(r"\n  return \{([^}]*)\};\n\}\)\(\);\s*$")


def test_every_export_of_a_shared_script_is_used_elsewhere():
    sources = {p: p.read_text() for p in [*STATIC_JS.glob("*.js"), *TEMPLATES.rglob("*.html")]}
    modules = 0
    for path in sorted(STATIC_JS.glob("*.js")):
        text = sources[path]
        module = MODULE_RE.search(text)
        if module is None:
            continue
        modules += 1
        exports = EXPORTS_RE.search(text)
        assert exports, f"{path.name}: no export list found"
        names = re.findall(r"(\w+)\s*:", exports.group(1))
        users = [t for p, t in sources.items() if p != path]
        unused = [n for n in names
                  if not any(re.search(rf"\b{module.group(1)}\.{n}\b", t) for t in users)]
        assert not unused, f"{path.name} exports what no page uses: {unused}"
    assert modules >= 2
