// GET /openapi.json: the OpenAPI 3.0 description of the API (tools/console/openapi.json, embedded
// at build time by embed_openapi.py). tests/integration/test_console_api.py checks it against the
// routes the server answers.
#pragma once

#include <string_view>

namespace segwire::console {

std::string_view openapi_json();

}  // namespace segwire::console
