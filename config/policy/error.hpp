// The one error type of the policy layer (object model, validation, profile resolution, compile).
// Control-side only: the packet path never throws.
#pragma once

#include <stdexcept>
#include <string>

namespace segwire::policy {

// `object` names the object as `<kind> "<name or ID>"` (e.g. `networkrulesetpolicy "web-in"`),
// `field` is the path inside it (e.g. `outgoingRules[1].protocolPorts[0]`), `problem` says what is
// wrong. `source` is the file the object came from, when it came from a file.
// what() = "[<source>: ]<object>: <field>: <problem>".
class PolicyError : public std::runtime_error {
  public:
    PolicyError(std::string object, std::string field, std::string problem, std::string source = "")
        : std::runtime_error(format(source, object, field, problem)),
          object_(std::move(object)),
          field_(std::move(field)),
          problem_(std::move(problem)),
          source_(std::move(source)) {}

    const std::string &object() const { return object_; }
    const std::string &field() const { return field_; }
    const std::string &problem() const { return problem_; }
    const std::string &source() const { return source_; }

    PolicyError with_source(const std::string &source) const {
        return PolicyError(object_, field_, problem_, source);
    }

  private:
    static std::string format(const std::string &source, const std::string &object,
                              const std::string &field, const std::string &problem) {
        std::string s;
        if (!source.empty()) s += source + ": ";
        s += object;
        if (!field.empty()) s += ": " + field;
        return s + ": " + problem;
    }

    std::string object_, field_, problem_, source_;
};

}  // namespace segwire::policy
