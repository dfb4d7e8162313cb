// fmt's implementation (fmt/format-inl.h: float formatting, the error and print functions),
// compiled once for the whole project, as fmt's own library build does in its src/format.cc.
//
// Why not fmt's header-only mode: it compiles this implementation into every file that formats,
// about 3 CPU seconds per file at -O3 and more under a sanitizer (docs/TESTING.md), in well over half
// of the project's files. Why not libfmt.so: the binaries are built on one machine and run on a GPU
// machine that need not have it; with this file they still need no fmt library at run time.
#include <fmt/format-inl.h>

FMT_BEGIN_NAMESPACE
namespace detail {

// What fmt/format.h declares without defining when FMT_HEADER_ONLY is not set.
template auto dragonbox::to_decimal(float x) noexcept -> dragonbox::decimal_fp<float>;
template auto dragonbox::to_decimal(double x) noexcept -> dragonbox::decimal_fp<double>;

template locale_ref::locale_ref(const std::locale& loc);
template auto locale_ref::get<std::locale>() const -> std::locale;

template auto thousands_sep_impl(locale_ref) -> thousands_sep_result<char>;
template auto decimal_point_impl(locale_ref) -> char;
template auto thousands_sep_impl(locale_ref) -> thousands_sep_result<wchar_t>;
template auto decimal_point_impl(locale_ref) -> wchar_t;

}  // namespace detail
FMT_END_NAMESPACE
