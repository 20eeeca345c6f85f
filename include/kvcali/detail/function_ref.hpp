// kvcali internals: a non-owning reference to a callable, so that a function taking a callback is
// compiled once rather than once per lambda passed to it (std::function would own and allocate).
#pragma once

#include <memory>
#include <type_traits>
#include <utility>

namespace kvcali::detail {

template <class Signature>
class function_ref;

/// Refers to a callable that outlives it (pass a lambda at the call site; a const one is refused).
template <class R, class... Args>
class function_ref<R(Args...)> {
public:
    template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, function_ref> && !std::is_const_v<std::remove_reference_t<F>> &&
             std::is_invocable_r_v<R, F&, Args...>) function_ref(F&& f)
    noexcept  // NOLINT(google-explicit-constructor): made at call sites from lambdas
        : object_(static_cast<void*>(std::addressof(f))), call_([](void* object, Args... args) -> R {
              return (*static_cast<std::remove_reference_t<F>*>(object))(std::forward<Args>(args)...);
          }) {}

    R operator()(Args... args) const { return call_(object_, std::forward<Args>(args)...); }

private:
    void* object_;
    R (*call_)(void*, Args...);
};

}  // namespace kvcali::detail
