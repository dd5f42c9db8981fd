#!/usr/bin/env python3
"""Build step: turns openapi.json into openapi_json.cpp (the text /openapi.json serves).

The JSON is checked here so that a syntax error fails the build, not a client."""
import json
import sys

src, out = sys.argv[1], sys.argv[2]
text = open(src, encoding="utf-8").read()
json.loads(text)
compact = json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
assert ")openapi\"" not in compact
with open(out, "w", encoding="utf-8") as f:
    f.write("// Generated from tools/console/openapi.json by embed_openapi.py; do not edit.\n")
    f.write('#include "tools/console/openapi.hpp"\n\nnamespace segwire::console {\n\n')
    f.write("std::string_view openapi_json() {\n")
    f.write('    static const char kText[] = R"openapi(' + compact + ')openapi";\n')
    f.write("    return {kText, sizeof kText - 1};\n}\n\n}  // namespace segwire::console\n")
