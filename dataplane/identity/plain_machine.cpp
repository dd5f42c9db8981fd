// The plain machine's two instantiations for tests and tools: the needs protocol (step) and the
// adapter's way with a test oracle (step_direct). The machine itself is plain_impl.hpp.
#include "dataplane/identity/plain_machine.hpp"

#include "dataplane/identity/plain_impl.hpp"

namespace segwire::dp::identity::plain {

Result step(const FlowState &state, const Event &ev, const Facts &fx) noexcept {
    return detail::replay_step(state, ev, fx, [](auto &c) { impl::dispatch(c); });
}

FlowState step_direct(const FlowState &state, const Event &ev, Facts &fx, Oracle &o) noexcept {
    return detail::oracle_step(state, ev, fx, o, [](auto &c) { impl::dispatch(c); });
}

}  // namespace segwire::dp::identity::plain
