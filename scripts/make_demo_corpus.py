"""Build the demo's context: a field guide to the Python standard library, from its docstrings.

The text is real (CPython's own documentation, under the PSF license) and large enough
(several hundred KB, about 100K tokens) to show what sharing a big context costs. Run it to
regenerate ``src/redis_swarm/data/stdlib-field-guide.md``; the output is committed so the demo
needs nothing at run time.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

MODULES = [
    "asyncio", "subprocess", "threading", "multiprocessing", "concurrent.futures", "queue",
    "socket", "ssl", "select", "selectors", "signal", "json", "csv", "sqlite3", "pathlib",
    "os", "shutil", "tempfile", "logging", "functools", "itertools", "collections", "heapq",
    "bisect", "contextlib", "dataclasses", "enum", "typing", "re", "string", "textwrap",
    "datetime", "time", "zoneinfo", "hashlib", "hmac", "secrets", "random", "statistics",
    "decimal", "fractions", "math", "struct", "array", "zlib", "gzip", "bz2", "lzma",
    "tarfile", "zipfile", "base64", "urllib.parse", "http.client", "email.message",
    "argparse", "unittest", "doctest", "pdb", "traceback", "warnings", "weakref", "copy",
    "pickle", "shelve", "io", "codecs", "unicodedata", "locale", "gettext", "difflib",
    "pprint", "inspect", "ast", "dis", "importlib", "sched", "uuid", "ipaddress", "operator",
]  # fmt: skip

HEADER = """# A field guide to the Python standard library

Built from the docstrings of CPython {version}, copyright Python Software Foundation,
distributed under the PSF License Agreement. Used by `swarm demo` as a shard's context.
"""


def describe(name: str) -> str:
    module = importlib.import_module(name)
    parts = [f"\n## {name}\n", inspect.getdoc(module) or "(no module docstring)", ""]
    for attr, value in sorted(vars(module).items()):
        if attr.startswith("_") or getattr(value, "__module__", None) != module.__name__:
            continue
        doc = inspect.getdoc(value)
        if not doc or not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        parts += [f"\n### {name}.{attr}\n", doc, ""]
        if inspect.isclass(value):
            for meth, func in sorted(vars(value).items()):
                mdoc = inspect.getdoc(func) if not meth.startswith("_") else None
                if mdoc and (inspect.isfunction(func) or isinstance(func, property)):
                    parts += [f"\n#### {name}.{attr}.{meth}\n", mdoc, ""]
    return "\n".join(parts)


def main() -> None:
    out = Path(__file__).parent.parent / "src/redis_swarm/data/stdlib-field-guide.md"
    version = ".".join(map(str, sys.version_info[:3]))
    text = HEADER.format(version=version) + "".join(describe(m) for m in MODULES)
    out.write_text(text)
    print(f"wrote {out} ({len(text.encode()):,} bytes, {text.count(chr(10)):,} lines)")


if __name__ == "__main__":
    main()
