// zmqkit — one shape for an outcome that is "done", "nothing (yet)" or "failed".
//
// A request-reply call, a bounded wait, a lookup: each ends in one of three ways, and every
// zmqkit API that has all three returns a result<T> instead of its own optional, bool + out
// parameter or status enum. It reads like std::optional where only "done" matters
// (`if (auto r = client.call(...)) use(*r);`) and says why when it is not done.
#pragma once

#include <concepts>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace zmqkit {

namespace detail {
template <class U> struct is_optional : std::false_type {};
template <class V> struct is_optional<std::optional<V>> : std::true_type {};
} // namespace detail

// The three outcomes.
enum class result_state : std::uint8_t {
    done,    // the value is there
    nothing, // nothing within the time given (a timeout, no message yet): try again later
    failed,  // a definite failure: error() says which, reason() says why
};

// The outcome of an operation that yields a T. Cheap to move; copyable when T is.
// Thread-safety: a value type (no shared state).
template <class T> class result {
public:
    // Nothing (the default): a timeout, or no answer yet.
    result() = default;
    // Done, with `value`.
    result(T value) : state_(result_state::done), value_(std::move(value)) {} // NOLINT: implicit

    [[nodiscard]] static result nothing(std::string reason = {}) {
        return result(result_state::nothing, {}, std::move(reason));
    }
    // Failed with an error code (a short word a program can test, e.g. "timeout", "busy") and a
    // readable reason.
    [[nodiscard]] static result failed(std::string error, std::string reason = {}) {
        return result(result_state::failed, std::move(error), std::move(reason));
    }

    [[nodiscard]] result_state state() const noexcept { return state_; }
    [[nodiscard]] bool ok() const noexcept { return state_ == result_state::done; }
    [[nodiscard]] bool is_nothing() const noexcept { return state_ == result_state::nothing; }
    [[nodiscard]] bool is_failed() const noexcept { return state_ == result_state::failed; }

    // std::optional's reading: true when done.
    explicit operator bool() const noexcept { return ok(); }
    [[nodiscard]] bool has_value() const noexcept { return ok(); }
    // The value; only when ok() (std::optional's rule: unchecked).
    [[nodiscard]] T& operator*() & noexcept { return *value_; }
    [[nodiscard]] const T& operator*() const& noexcept { return *value_; }
    [[nodiscard]] T&& operator*() && noexcept { return std::move(*value_); }
    [[nodiscard]] T* operator->() noexcept { return &*value_; }
    [[nodiscard]] const T* operator->() const noexcept { return &*value_; }
    // The value; throws std::bad_optional_access when not done.
    [[nodiscard]] T& value() & { return value_.value(); }
    [[nodiscard]] const T& value() const& { return value_.value(); }
    [[nodiscard]] T&& value() && { return std::move(value_).value(); }

    // failed: the error code; otherwise empty.
    [[nodiscard]] const std::string& error() const noexcept { return error_; }
    // failed or nothing: a readable reason (may be empty); done: empty.
    [[nodiscard]] const std::string& reason() const noexcept { return reason_; }

    // Done with a value equal to `v` (so a test reads EXPECT_EQ(r, "200")).
    // (std::optional's own operator== compares an optional with a result.)
    template <class U>
    requires(!std::is_same_v<U, result> && !detail::is_optional<U>::value &&
             std::equality_comparable_with<T, U>) friend bool
    operator==(const result& r, const U& v) {
        return r.ok() && *r.value_ == v;
    }

private:
    result(result_state state, std::string error, std::string reason)
        : state_(state), error_(std::move(error)), reason_(std::move(reason)) {}

    result_state state_ = result_state::nothing;
    std::optional<T> value_;
    std::string error_;
    std::string reason_;
};

} // namespace zmqkit
