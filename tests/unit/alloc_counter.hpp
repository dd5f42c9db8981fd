// Counts operator new calls on this thread while g_counting is set, for the "no allocation on the
// packet path" tests. Include from exactly one source file of a test executable: it replaces the
// global operator new / delete.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

namespace {
thread_local bool g_counting = false;
thread_local size_t g_allocations = 0;
}  // namespace

void *operator new(std::size_t n) {
    if (g_counting) ++g_allocations;
    if (void *p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void *p) noexcept {
    std::free(p);
}
void operator delete(void *p, std::size_t) noexcept {
    std::free(p);
}
