// Positional binding for both stores' statements: `st.Bind(a, b, c)` binds a to ?1, b to ?2
// and c to ?3 through the statement's own BindText/BindInt/BindDouble/BindTime/BindNull, chosen
// by each argument's type, so a query reads as its SQL and one line of values.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <type_traits>

#include "common/time.h"

namespace hutch::store {

// Binds `v` at position `i` of `st` by its type: text for anything a string_view takes, time
// for TimePoint, double for double, NULL for nullptr, an integer for the rest (bool as 0/1);
// the optional ones as NULL when empty.
template <typename Stmt, typename T>
void BindOne(Stmt& st, int i, const T& v) {
  if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    st.BindText(i, v);
  } else if constexpr (std::is_same_v<T, TimePoint> ||
                       std::is_same_v<T, std::optional<TimePoint>>) {
    st.BindTime(i, v);
  } else if constexpr (std::is_same_v<T, double> || std::is_same_v<T, std::optional<double>>) {
    st.BindDouble(i, v);
  } else if constexpr (std::is_same_v<T, std::nullptr_t>) {
    st.BindNull(i);
  } else if constexpr (std::is_same_v<T, std::optional<int64_t>>) {
    st.BindInt(i, v);
  } else if constexpr (std::is_same_v<T, bool>) {
    st.BindInt(i, int64_t{v ? 1 : 0});
  } else {
    static_assert(std::is_integral_v<T>, "bind text, integers, doubles, times or nullptr");
    st.BindInt(i, static_cast<int64_t>(v));
  }
}

// Binds args to ?1, ?2, … in order.
template <typename Stmt, typename... Args>
void BindEach(Stmt& st, const Args&... args) {
  int i = 0;
  (BindOne(st, ++i, args), ...);
}

}  // namespace hutch::store
