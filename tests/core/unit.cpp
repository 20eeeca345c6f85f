// Unit tests of the core: number and string formatting, the writer, atomic writes, layer lists,
// the quant_layers argument, resolution rules, policies customised at compile time.
#define BOOST_TEST_MODULE core_unit
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <kvcali/detail/concat.hpp>
#include <kvcali/detail/input_file.hpp>
#include <kvcali/detail/numbers.hpp>
#include <kvcali/kvcali.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <type_traits>

#include "../support/test_support.hpp"

namespace fs = std::filesystem;
using namespace kvcali_test;

BOOST_AUTO_TEST_SUITE(float_repr)

BOOST_AUTO_TEST_CASE(python_layout_of_float32_values) {
    const std::pair<float, const char*> cases[] = {
        {0.7f, "0.7"},
        {1.3f, "1.3"},
        {0.01f, "0.01"},
        {0.999999f, "0.999999"},
        {1.0f, "1.0"},
        {0.0f, "0.0"},
        {-0.0f, "-0.0"},
        {1.0f / 3.0f, "0.33333334"},
        {123456789.0f, "123456790.0"},
        {0.0001f, "0.0001"},
        {0.00001f, "1e-05"},
        {1e17f, "1e+17"},
        {1.5e20f, "1.5e+20"},
        {1e16f, "1e+16"},
        {1e15f, "1000000000000000.0"},
        {-2.5f, "-2.5"},
        {5.0f, "5.0"},
        {static_cast<float>(0.50222447514534), "0.50222445"},
        {1e-45f, "1e-45"},
        {3.4028235e38f, "3.4028235e+38"},
        {0.00012345f, "0.00012345"},
        {100.0f, "100.0"},
        {1.17549435e-38f, "1.1754944e-38"},
    };
    for (const auto& [value, text] : cases) {
        BOOST_TEST_CONTEXT("value " << text) { BOOST_TEST(kvcali::float32_repr(value) == text); }
    }
}

BOOST_AUTO_TEST_CASE(non_finite_values_as_python_writes_them) {
    BOOST_TEST(kvcali::float32_repr(std::numeric_limits<float>::infinity()) == "Infinity");
    BOOST_TEST(kvcali::float32_repr(-std::numeric_limits<float>::infinity()) == "-Infinity");
    BOOST_TEST(kvcali::float32_repr(std::numeric_limits<float>::quiet_NaN()) == "NaN");
}

BOOST_AUTO_TEST_CASE(doubles_in_python_repr_layout) {
    // Python 3: repr(x) for each (the values written into other tools' JSON by `export --into`).
    const std::pair<double, const char*> cases[] = {
        {0.1, "0.1"},
        {0.30000000000000004, "0.30000000000000004"},
        {1e15, "1000000000000000.0"},
        {2e10, "20000000000.0"},
        {1e16, "1e+16"},
        {1.5e300, "1.5e+300"},
        {0.0001, "0.0001"},
        {0.00012, "0.00012"},
        {1e-05, "1e-05"},
        {1.5e-05, "1.5e-05"},
        {-0.0, "-0.0"},
        {0.0, "0.0"},
        {123.0, "123.0"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {5e-324, "5e-324"},
        {static_cast<double>(0.0078125f), "0.0078125"},
        {static_cast<double>(0.1f), "0.10000000149011612"},
    };
    for (const auto& [value, text] : cases) {
        BOOST_TEST_CONTEXT("value " << text) { BOOST_TEST(kvcali::double_repr(value) == text); }
    }
    BOOST_TEST(kvcali::double_repr(-std::numeric_limits<double>::infinity()) == "-Infinity");
    BOOST_TEST(kvcali::double_repr(std::numeric_limits<double>::quiet_NaN()) == "NaN");
}

BOOST_AUTO_TEST_CASE(every_repr_round_trips_to_the_same_float32) {
    std::uint32_t bits = 0x00000001;
    for (int i = 0; i < 200000; ++i, bits += 0x5F3B) {
        float f;
        std::memcpy(&f, &bits, sizeof f);
        if (!std::isfinite(f)) continue;
        const std::string s = kvcali::float32_repr(f);
        float back = 0;
        std::from_chars(s.data(), s.data() + s.size(), back);
        BOOST_TEST_REQUIRE(std::memcmp(&back, &f, sizeof f) == 0, s);
    }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(json_strings)

static std::string js(std::string_view s) {
    std::string out;
    kvcali::append_json_string(out, s);
    return out;
}

BOOST_AUTO_TEST_CASE(escapes_like_python_ensure_ascii) {
    BOOST_TEST(js("model.layers.0.k_proj") == "\"model.layers.0.k_proj\"");
    BOOST_TEST(js("a\"b\\c") == "\"a\\\"b\\\\c\"");
    BOOST_TEST(js("\n\r\t\b\f") == "\"\\n\\r\\t\\b\\f\"");
    BOOST_TEST(js(std::string_view("\x01\x1f\x7f", 3)) == "\"\\u0001\\u001f\\u007f\"");
    BOOST_TEST(js("块.注意力") == "\"\\u5757.\\u6ce8\\u610f\\u529b\"");
    BOOST_TEST(js("é") == "\"\\u00e9\"");
    BOOST_TEST(js("\xF0\x9F\x98\x80") == "\"\\ud83d\\ude00\"");  // U+1F600 as a surrogate pair, lowercase
    BOOST_TEST(js(std::string_view("\0", 1)) == "\"\\u0000\"");
    BOOST_TEST(js("\xFF") == "\"\\ufffd\"");
}

BOOST_AUTO_TEST_CASE(messages_are_the_strings_operator_plus_would_build) {
    using kvcali::detail::append_concat;
    using kvcali::detail::concat;
    const std::string s = "layer";
    const std::string_view v = "k_proj";
    BOOST_TEST(concat({}) == "");
    BOOST_TEST(concat({"a", s, v, '"', std::string("tmp")}) == "alayerk_proj\"tmp");
    // Integers as std::to_string writes them, at both ends of each width.
    BOOST_TEST(concat({0, " ", 7u, " ", -1, " ", std::numeric_limits<int>::min(), " ", std::numeric_limits<std::uint32_t>::max()}) ==
               std::to_string(0) + " 7 -1 " + std::to_string(std::numeric_limits<int>::min()) + " 4294967295");
    BOOST_TEST(concat({std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::uint64_t>::max()}) ==
               std::to_string(std::numeric_limits<std::int64_t>::min()) + std::to_string(std::numeric_limits<std::uint64_t>::max()));
    BOOST_TEST(concat({std::size_t{12}, ':', std::uint32_t{3}}) == "12:3");
    // A NUL character and bytes above 0x7F are kept as they are.
    BOOST_TEST(concat({'\0', '\xE9', std::string_view("x\0y", 3)}) == std::string("\0\xE9x\0y", 5));
    std::string out = "at ";
    append_concat(out, {"line ", 3, ", column ", 14});
    append_concat(out, {});
    BOOST_TEST(out == "at line 3, column 14");
}

// The layer list's "in"/"out" counts: decimal digits only, up to 2^64 - 1 (what std::from_chars
// accepted for a whole string of digits).
BOOST_AUTO_TEST_CASE(decimal_digits_to_64_bits) {
    using kvcali::detail::decimal_digits_to_u64;
    std::uint64_t v = 7;
    BOOST_TEST((decimal_digits_to_u64("0", v) && v == 0));
    BOOST_TEST((decimal_digits_to_u64("000123", v) && v == 123));
    BOOST_TEST((decimal_digits_to_u64("18446744073709551615", v) && v == std::numeric_limits<std::uint64_t>::max()));
    BOOST_TEST(!decimal_digits_to_u64("18446744073709551616", v));
    BOOST_TEST(!decimal_digits_to_u64("99999999999999999999", v));
    BOOST_TEST(!decimal_digits_to_u64("", v));
    BOOST_TEST(!decimal_digits_to_u64("-1", v));
    BOOST_TEST(!decimal_digits_to_u64("+1", v));
    BOOST_TEST(!decimal_digits_to_u64("1e3", v));
    BOOST_TEST(!decimal_digits_to_u64("12 ", v));
    BOOST_TEST(!decimal_digits_to_u64("1.0", v));
}

BOOST_AUTO_TEST_CASE(utf8_validation) {
    std::size_t at = 0;
    BOOST_TEST(kvcali::is_valid_utf8("plain"));
    BOOST_TEST(kvcali::is_valid_utf8("块.注意力"));
    BOOST_TEST(!kvcali::is_valid_utf8("ab\xC0\x80", &at));  // overlong
    BOOST_TEST(at == 2u);
    BOOST_TEST(!kvcali::is_valid_utf8("\xED\xA0\x80"));  // surrogate
    BOOST_TEST(!kvcali::is_valid_utf8("\xE6\xB3"));      // truncated
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

kvcali::layer_table three_linears() {
    kvcali::diagnostics d;
    auto t = kvcali::parse_layer_list(R"([{"name":"matmul1","type":"Linear"},{"name":"matmul2","type":"Linear"},
        {"name":"conv1","type":"Conv2d"}])",
                                      "model.json", d);
    BOOST_TEST_REQUIRE(!d.has_errors());
    return t;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(writer)

BOOST_AUTO_TEST_CASE(reference_layout_for_both_algorithms) {
    kvcali::resolved_config doc = kvcali::resolve_quant_cali_config(three_linears(), kvcali::quant_layers{"matmul2", "matmul1"});
    // Make the second layer HFMG with asymmetric set, by hand.
    doc.layers[1].algorithm = 1;
    doc.layers[1].values = {kvcali::param_value::of_uint(2048), kvcali::param_value::of_bool(false), kvcali::param_value::of_enum(1)};
    const std::string expected =
        "{\n    \"batch_num\":1,\n    \"activation_offset\":true,\n"
        "    \"matmul2\":{\n        \"kv_data_quant_config\":{\n            \"act_algo\":\"ifmr\",\n"
        "            \"max_percentile\":0.999999,\n            \"min_percentile\":0.999999,\n"
        "            \"search_range\":[\n                0.7,\n                1.3\n            ],\n"
        "            \"search_step\":0.01,\n            \"quant_granularity\":0\n        }\n    },\n"
        "    \"matmul1\":{\n        \"kv_data_quant_config\":{\n            \"act_algo\":\"hfmg\",\n"
        "            \"num_of_bins\":2048,\n            \"asymmetric\":false,\n            \"quant_granularity\":1\n"
        "        }\n    }\n}";
    BOOST_TEST(kvcali::write_config_json(doc) == expected);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(atomic_write)

BOOST_AUTO_TEST_CASE(an_existing_file_survives_an_error) {
    temp_dir dir;
    const fs::path out = dir / "config.json";
    spit(out, "previous content");
    BOOST_CHECK_THROW(kvcali::create_quant_cali_config(out, three_linears(), kvcali::quant_layers{"nope"}), kvcali::error);
    BOOST_TEST(slurp(out) == "previous content");
    BOOST_TEST(dir.entries().size() == 1u);  // no temporary left behind
}

BOOST_AUTO_TEST_CASE(replaces_an_existing_file_and_keeps_its_mode) {
    temp_dir dir;
    const fs::path out = dir / "config.json";
    spit(out, "old");
    fs::permissions(out, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
    kvcali::create_quant_cali_config(out, three_linears(), kvcali::quant_layers{"matmul1"});
    BOOST_TEST(slurp(out).rfind("{\n    \"batch_num\":1", 0) == 0u);
    BOOST_TEST(
        ((fs::status(out).permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read)));
    BOOST_TEST(dir.entries().size() == 1u);
}

BOOST_AUTO_TEST_CASE(io_errors_name_the_path) {
    temp_dir dir;
    auto expect_io_error = [&](const fs::path& target, const std::string& fragment) {
        try {
            kvcali::write_file_atomic(target, "x");
            BOOST_FAIL("no error for " << target);
        } catch (const kvcali::error& e) {
            BOOST_TEST((e.code() == kvcali::errc::io_error));
            BOOST_TEST(std::string(e.what()).find(target.string()) != std::string::npos, e.what());
            BOOST_TEST(std::string(e.what()).find(fragment) != std::string::npos, e.what());
        }
    };
    expect_io_error(dir.path(), "is a directory");
    expect_io_error(dir / "missing" / "config.json", "does not exist");
    if (::geteuid() != 0) {  // root writes anywhere; the read-only case only means something for others
        fs::create_directory(dir / "ro");
        fs::permissions(dir / "ro", fs::perms::owner_read | fs::perms::owner_exec);
        expect_io_error(dir / "ro" / "config.json", "Permission denied");
    }
    BOOST_TEST(dir.entries().size() <= 1u);
}

BOOST_AUTO_TEST_CASE(files_are_read_whole_in_pieces_and_errors_are_told) {
    temp_dir dir;
    // Larger than read_file's 64 KiB buffer, and not a multiple of it.
    std::string text;
    for (int i = 0; text.size() < 200000; ++i) text += std::to_string(i) + (i % 7 == 0 ? "\n" : ",");
    const fs::path file = dir / "big.txt";
    kvcali::write_file_atomic(file, text);
    BOOST_TEST(kvcali::read_file(file, 1u << 20) == text);
    try {
        (void)kvcali::read_file(file, 1000);
        BOOST_FAIL("no error for a file over the limit");
    } catch (const kvcali::error& e) {
        BOOST_TEST(std::string(e.what()).find("larger than the limit of 1000 bytes") != std::string::npos, e.what());
    }
    // The reader itself: short counts only at the end, then nothing; not opened, with errno.
    kvcali::detail::input_file in(file.c_str());
    BOOST_REQUIRE(static_cast<bool>(in));
    std::string got(text.size() + 10, '\0');
    BOOST_TEST(in.read(got.data(), 1000) == 1000u);
    BOOST_TEST(in.read(got.data() + 1000, got.size() - 1000) == text.size() - 1000);
    BOOST_TEST(in.read(got.data(), 10) == 0u);
    BOOST_TEST(!in.failed());
    got.resize(text.size());
    BOOST_TEST(got == text);
    kvcali::detail::input_file moved = std::move(in);
    BOOST_TEST(!static_cast<bool>(in));
    BOOST_TEST(static_cast<bool>(moved));
    errno = 0;
    kvcali::detail::input_file missing((dir / "missing").c_str());
    BOOST_TEST(!static_cast<bool>(missing));
    BOOST_TEST(errno == ENOENT);
    BOOST_TEST(missing.read(got.data(), 10) == 0u);
    // A folder opens but cannot be read: that is an error, not an empty file.
    kvcali::detail::input_file folder(dir.path().c_str());
    BOOST_REQUIRE(static_cast<bool>(folder));
    BOOST_TEST(folder.read(got.data(), 10) == 0u);
    BOOST_TEST(folder.failed());
}

namespace {

/// The names in a folder, sorted (to check that no temporary was left beside a target).
std::vector<std::string> sorted_entries(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(writes_through_a_symlink_to_an_existing_file) {
    temp_dir dir;
    fs::create_directory(dir / "data");
    fs::create_directory(dir / "out");
    const fs::path target = dir / "data" / "config.json", link = dir / "out" / "config.json";
    spit(target, "old");
    fs::permissions(target, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
    fs::create_symlink(target, link);  // absolute
    {
        kvcali::atomic_file_writer abandoned(link);  // destroyed without commit(): nothing changes
        abandoned.write("never");
    }
    BOOST_TEST(slurp(target) == "old");
    kvcali::write_file_atomic(link, "new bytes");
    BOOST_TEST(fs::is_symlink(link));
    BOOST_TEST(fs::read_symlink(link) == target);
    BOOST_TEST(slurp(target) == "new bytes");
    BOOST_TEST(
        ((fs::status(target).permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read)));
    BOOST_TEST(sorted_entries(dir / "data") == std::vector<std::string>{"config.json"}, boost::test_tools::per_element());
    BOOST_TEST(sorted_entries(dir / "out") == std::vector<std::string>{"config.json"}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(writes_through_a_relative_symlink_in_another_folder) {
    temp_dir dir;
    fs::create_directory(dir / "data");
    fs::create_directory(dir / "out");
    spit(dir / "data" / "config.json", "old");
    fs::create_symlink("../data/config.json", dir / "out" / "link.json");
    kvcali::write_file_atomic(dir / "out" / "link.json", "new");
    BOOST_TEST(fs::is_symlink(dir / "out" / "link.json"));
    BOOST_TEST(fs::read_symlink(dir / "out" / "link.json") == fs::path("../data/config.json"));
    BOOST_TEST(slurp(dir / "data" / "config.json") == "new");
    BOOST_TEST(sorted_entries(dir / "data") == std::vector<std::string>{"config.json"}, boost::test_tools::per_element());
    BOOST_TEST(sorted_entries(dir / "out") == std::vector<std::string>{"link.json"}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(writes_through_a_chain_of_two_links) {
    temp_dir dir;
    fs::create_directory(dir / "a");
    fs::create_directory(dir / "b");
    spit(dir / "b" / "config.json", "old");
    fs::create_symlink("config.json", dir / "b" / "second");  // b/second -> b/config.json
    fs::create_symlink("../b/second", dir / "a" / "first");   // a/first -> b/second
    kvcali::write_file_atomic(dir / "a" / "first", "new");
    BOOST_TEST(fs::is_symlink(dir / "a" / "first"));
    BOOST_TEST(fs::is_symlink(dir / "b" / "second"));
    BOOST_TEST(slurp(dir / "b" / "config.json") == "new");
    BOOST_TEST(sorted_entries(dir / "a") == std::vector<std::string>{"first"}, boost::test_tools::per_element());
    BOOST_TEST(sorted_entries(dir / "b") == (std::vector<std::string>{"config.json", "second"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_dangling_link_creates_the_file_it_names) {
    temp_dir dir;
    fs::create_directory(dir / "data");
    fs::create_directory(dir / "out");
    fs::create_symlink("../data/new.json", dir / "out" / "link.json");
    kvcali::write_file_atomic(dir / "out" / "link.json", "created");
    BOOST_TEST(fs::is_symlink(dir / "out" / "link.json"));
    BOOST_TEST(slurp(dir / "data" / "new.json") == "created");
    BOOST_TEST(sorted_entries(dir / "data") == std::vector<std::string>{"new.json"}, boost::test_tools::per_element());
    BOOST_TEST(sorted_entries(dir / "out") == std::vector<std::string>{"link.json"}, boost::test_tools::per_element());
    // A link whose target's folder is missing: an error naming that folder, nothing created.
    fs::create_symlink("../nowhere/x.json", dir / "out" / "lost.json");
    try {
        kvcali::write_file_atomic(dir / "out" / "lost.json", "x");
        BOOST_FAIL("no error for a link into a missing folder");
    } catch (const kvcali::error& e) {
        BOOST_TEST((e.code() == kvcali::errc::io_error));
        BOOST_TEST(std::string(e.what()).find("does not exist") != std::string::npos, e.what());
    }
    BOOST_TEST(sorted_entries(dir / "out") == (std::vector<std::string>{"link.json", "lost.json"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(writes_a_fifo_plainly) {
    temp_dir dir;
    const fs::path fifo = dir / "fifo";
    BOOST_REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    // The reader end, opened first (without blocking) so that the writer's open does not wait; the
    // bytes fit in the pipe's buffer, so the write finishes before they are read.
    const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    BOOST_REQUIRE(reader >= 0);
    const std::string bytes = "{\n    \"batch_num\":1\n}";
    kvcali::write_file_atomic(fifo, bytes);
    std::string got;
    char buf[4096];
    for (ssize_t n; (n = ::read(reader, buf, sizeof buf)) > 0;) got.append(buf, static_cast<std::size_t>(n));
    ::close(reader);
    BOOST_TEST(got == bytes);
    BOOST_TEST(fs::is_fifo(fs::symlink_status(fifo)));
    BOOST_TEST(sorted_entries(dir.path()) == std::vector<std::string>{"fifo"}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(writes_a_character_device_plainly) {
    // A device node of our own first (where this may create one, as root): a writer that replaced
    // the device by a file would replace this one, not /dev/null.
    temp_dir dir;
    const fs::path own = dir / "null";
    const bool have_own = ::mknod(own.c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0;
    if (have_own) {
        kvcali::write_file_atomic(own, "x");
        BOOST_REQUIRE(fs::is_character_file(fs::symlink_status(own)));
        BOOST_REQUIRE(sorted_entries(dir.path()) == std::vector<std::string>{"null"});
    }
    if (!have_own && ::geteuid() == 0) {
        BOOST_TEST_MESSAGE("skipped /dev/null: root without a device node of its own to try first");
        return;
    }
    kvcali::write_file_atomic("/dev/null", "config bytes");
    BOOST_TEST(fs::is_character_file(fs::symlink_status("/dev/null")));
}

BOOST_AUTO_TEST_CASE(refuses_a_socket) {
    temp_dir dir;
    const fs::path sock = dir / "sock";
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    BOOST_REQUIRE(fd >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    BOOST_REQUIRE(sock.string().size() < sizeof addr.sun_path);
    std::strcpy(addr.sun_path, sock.c_str());
    BOOST_REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    try {
        kvcali::write_file_atomic(sock, "x");
        BOOST_FAIL("no error for a socket");
    } catch (const kvcali::error& e) {
        BOOST_TEST((e.code() == kvcali::errc::io_error));
        BOOST_TEST(std::string(e.what()).find(sock.string()) != std::string::npos, e.what());
        BOOST_TEST(std::string(e.what()).find("socket") != std::string::npos, e.what());
    }
    ::close(fd);
    BOOST_TEST(fs::is_socket(fs::symlink_status(sock)));
    BOOST_TEST(sorted_entries(dir.path()) == std::vector<std::string>{"sock"}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(layer_list)

BOOST_AUTO_TEST_CASE(implicit_containers_in_named_modules_order) {
    kvcali::diagnostics d;
    auto t = kvcali::parse_layer_list(R"([{"name":"model.layers.0.k","type":"Linear"},{"name":"model.layers","type":"ModuleList"},
        {"name":"lm_head","type":"Linear"}])",
                                      "m.json", d);
    BOOST_TEST_REQUIRE(!d.has_errors());
    std::vector<std::string> names, types;
    for (const auto& l : t) {
        names.push_back(l.name);
        types.push_back(l.type);
    }
    BOOST_TEST(names == (std::vector<std::string>{"model", "model.layers", "model.layers.0", "model.layers.0.k", "lm_head"}),
               boost::test_tools::per_element());
    BOOST_TEST(types == (std::vector<std::string>{"Module", "ModuleList", "Module", "Linear", "Linear"}), boost::test_tools::per_element());
    BOOST_TEST(t.get("model.layers.0.k")->eligible);
    BOOST_TEST(!t.get("model")->eligible);
}

BOOST_AUTO_TEST_CASE(each_type_is_asked_once_and_answered_for_every_row) {
    // 100 distinct types (more than the reader keeps in its small table before it switches to a
    // hash map), each used twice and out of order, and 200 rows (the listed-or-implicit flags of
    // the rows span several 64-bit words): every row gets its own type's answer, and the predicate
    // is asked once per type.
    std::string text = "[";
    auto type_of = [](int i) { return "T" + std::to_string((i * 37) % 100); };
    for (int i = 0; i < 200; ++i) {
        text += (i ? "," : "") + std::string("{\"name\":\"m.b") + std::to_string(i / 10) + ".l" + std::to_string(i) + "\",\"type\":\"" +
                type_of(i) + "\"}";
    }
    // A container listed after its children takes its own type.
    text += R"(,{"name":"m.b12","type":"T4"}])";
    std::map<std::string, int, std::less<>> asked;
    const kvcali::type_predicate even = [&](std::string_view type) {
        ++asked[std::string(type)];
        return type[0] == 'T' && std::stoi(std::string(type.substr(1))) % 2 == 0;
    };
    kvcali::diagnostics d;
    const auto t = kvcali::parse_layer_list(text, "types.json", d, even);
    BOOST_TEST_REQUIRE(!d.has_errors());
    BOOST_TEST(t.size() == 1u + 20u + 200u);  // m, m.b0..m.b19, the layers
    for (int i = 0; i < 200; ++i) {
        const auto* l = t.get("m.b" + std::to_string(i / 10) + ".l" + std::to_string(i));
        BOOST_TEST_REQUIRE(l != nullptr);
        BOOST_TEST(l->type == type_of(i));
        BOOST_TEST(l->eligible == ((i * 37) % 100 % 2 == 0), "row " << i);
    }
    BOOST_TEST(t.get("m.b12")->type == "T4");  // (row 133: the third word of flags)
    BOOST_TEST(t.get("m.b12")->eligible);
    BOOST_TEST(t.get("m.b4")->type == "Module");
    BOOST_TEST(!t.get("m.b4")->eligible);
    BOOST_TEST(asked.size() == 101u);  // T0..T99 and Module
    BOOST_TEST(std::all_of(asked.begin(), asked.end(), [](const auto& a) { return a.second == 1; }));
}

BOOST_AUTO_TEST_CASE(bad_lists_are_invalid_model_with_position) {
    auto errors_of = [](std::string_view text) {
        kvcali::diagnostics d;
        kvcali::parse_layer_list(text, "m.json", d);
        return d.take();
    };
    auto dup = errors_of(R"([{"name":"a","type":"Linear"},{"name":"a","type":"Linear"}])");
    BOOST_TEST_REQUIRE(dup.size() == 1u);
    BOOST_TEST((dup[0].category == kvcali::errc::invalid_model));
    BOOST_TEST(dup[0].json_path == "[1].name");
    auto syntax = errors_of("[\n  {\"name\": \"a\", \"type\": }\n]");
    BOOST_TEST_REQUIRE(syntax.size() == 1u);
    BOOST_TEST(syntax[0].where.line == 2u);
    BOOST_TEST(syntax[0].where.column == 25u);  // the unexpected "}"
    BOOST_TEST(errors_of(R"({"name":"a"})").size() == 1u);
    BOOST_TEST(errors_of(R"([{"name":"a"}])").size() == 1u);
    BOOST_TEST(errors_of(R"([{"name":"","type":"Linear"}])").size() == 1u);
    BOOST_TEST(errors_of(std::string(100000, '[')).size() == 1u);  // nesting: an error, not a crash
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(resolution)

BOOST_AUTO_TEST_CASE(all_problems_are_reported_together_with_suggestions) {
    try {
        kvcali::resolve_quant_cali_config(three_linears(), kvcali::quant_layers{"matmul3", "conv1", "matmul1", "matmul1"});
        BOOST_FAIL("no error");
    } catch (const kvcali::error& e) {
        BOOST_TEST_REQUIRE(e.diagnostics().size() == 3u);
        BOOST_TEST((e.code() == kvcali::errc::unknown_layer));
        BOOST_TEST(e.diagnostics()[0].message.find("did you mean \"matmul1\" or \"matmul2\"?") != std::string::npos,
                   e.diagnostics()[0].message);
        BOOST_TEST((e.diagnostics()[1].category == kvcali::errc::unsupported_layer_type));
        BOOST_TEST((e.diagnostics()[2].category == kvcali::errc::duplicate_layer));
    }
}

BOOST_AUTO_TEST_CASE(aliases_map_to_their_layer_or_are_ambiguous) {
    kvcali::layer_table t;
    t.add("/layers.0/k/MatMul", "MatMul", true);
    t.add("/layers.0/v/MatMul", "MatMul", true);
    t.add("/layers.0/v/MatMul_1", "MatMul", true);
    t.add_alias("layers.0.k", 0);
    t.add_alias("layers.0.v", 1);
    t.add_alias("layers.0.v", 2);
    auto doc = kvcali::resolve_quant_cali_config(t, kvcali::quant_layers{"layers.0.k"});
    BOOST_TEST(doc.layers[0].name == "/layers.0/k/MatMul");
    BOOST_TEST(doc.layers[0].selector == "layers.0.k");
    try {
        kvcali::resolve_quant_cali_config(t, kvcali::quant_layers{"layers.0.v"});
        BOOST_FAIL("no error");
    } catch (const kvcali::error& e) {
        BOOST_TEST((e.code() == kvcali::errc::unknown_layer));
        BOOST_TEST(std::string(e.what()).find("/layers.0/v/MatMul_1") != std::string::npos, e.what());
    }
}

BOOST_AUTO_TEST_CASE(a_layer_named_twice_shows_both_spellings_when_they_differ) {
    kvcali::layer_table t;
    t.add("/layers.0/k/MatMul", "MatMul", true);
    t.add_alias("layers.0.k", 0);
    auto messages = [&](const std::optional<kvcali::quant_layers>& names, const std::string& cfg_text) {
        temp_dir dir;
        std::optional<fs::path> cfg;
        if (!cfg_text.empty()) {
            spit(dir / "quant.cfg", cfg_text);
            cfg = dir / "quant.cfg";
        }
        std::vector<std::string> out;
        try {
            kvcali::resolve_quant_cali_config(t, names, cfg);
        } catch (const kvcali::error& e) {
            for (const auto& d : e.diagnostics()) {
                if (d.category == kvcali::errc::duplicate_layer) out.push_back(d.message);
            }
        }
        return out;
    };
    const std::string layer = "\"/layers.0/k/MatMul\"";
    auto listed = messages(kvcali::quant_layers{"/layers.0/k/MatMul", "layers.0.k"}, "");
    BOOST_TEST_REQUIRE(listed.size() == 1u);
    BOOST_TEST(listed[0].ends_with(" (as " + layer + " and \"layers.0.k\")"), listed[0]);
    listed = messages(kvcali::quant_layers{"layers.0.k", "layers.0.k"}, "");
    BOOST_TEST_REQUIRE(listed.size() == 1u);
    BOOST_TEST(listed[0].find("(as ") == std::string::npos, listed[0]);
    const std::string block = " kv_data_quant_config { hfmg_quantize { num_of_bins: 1024 } } }\n";
    auto overridden = messages(std::nullopt, "override_layers_configs { layer_name: 'layers.0.k'" + block +
                                                 "override_layers_configs { layer_name: '/layers.0/k/MatMul'" + block);
    BOOST_TEST_REQUIRE(overridden.size() == 1u);
    BOOST_TEST(overridden[0] == "layer " + layer + " has more than one override_layers_configs entry (as \"layers.0.k\" and " + layer + ")",
               overridden[0]);
}

BOOST_AUTO_TEST_CASE(overrides_without_layer_name_are_also_duplicates) {
    // Spec section 2: a missing layer_name is reported (unknown_layer) and stands for the empty name,
    // so a second such override is also duplicate_layer; one alone is not.
    auto categories = [](const std::string& cfg_text) {
        temp_dir dir;
        spit(dir / "quant.cfg", cfg_text);
        std::vector<kvcali::errc> out;
        try {
            kvcali::resolve_quant_cali_config(three_linears(), std::nullopt, dir / "quant.cfg");
        } catch (const kvcali::error& e) {
            for (const auto& d : e.diagnostics()) {
                if (d.is_error()) out.push_back(d.category);
            }
        }
        return out;
    };
    const std::string block = "override_layers_configs { kv_data_quant_config { hfmg_quantize { num_of_bins: 1024 } } }\n";
    const auto one = categories("kv_cache_quant_config { quant_layers: 'matmul1' }\n" + block);
    BOOST_TEST(one == std::vector<kvcali::errc>{kvcali::errc::unknown_layer}, boost::test_tools::per_element());
    const auto two = categories("kv_cache_quant_config { quant_layers: 'matmul1' }\n" + block + block);
    BOOST_TEST(two == (std::vector<kvcali::errc>{kvcali::errc::unknown_layer, kvcali::errc::unknown_layer, kvcali::errc::duplicate_layer}),
               boost::test_tools::per_element());
    const auto three = categories(block + block + block);
    BOOST_TEST(std::count(three.begin(), three.end(), kvcali::errc::duplicate_layer) == 2);
}

BOOST_AUTO_TEST_CASE(suggestions_stay_fast_on_a_million_layers) {
    // Guards against a quadratic scan, not a speed test (benchmarks measure speed): finding the
    // suggestions among a million layers may take at most 20 times as long as building the table
    // of those layers, plus a second, whatever the build (-O0, sanitizers) and the machine's load.
    // A quadratic scan would take about a million times as long. (200,000 layers under the
    // sanitizers, where a million took 40 s: the scan would still take 200,000 times as long.)
    kvcali::layer_table t;
    const int layers = static_cast<int>(kvcali_test::sample(1000000, 5));
    const auto build_start = std::chrono::steady_clock::now();
    t.reserve(static_cast<std::size_t>(layers));
    for (int i = 0; i < layers; ++i) t.add("model.layers." + std::to_string(i) + ".self_attn.k_proj", "Linear", true);
    const auto build_time = std::chrono::steady_clock::now() - build_start;
    const auto start = std::chrono::steady_clock::now();
    try {
        kvcali::resolve_quant_cali_config(t, kvcali::quant_layers{"model.layers.12345.self_atn.k_proj"});
        BOOST_FAIL("no error");
    } catch (const kvcali::error& e) {
        BOOST_TEST(std::string(e.what()).find("\"model.layers.12345.self_attn.k_proj\"") != std::string::npos, e.what());
    }
    const auto resolve_time = std::chrono::steady_clock::now() - start;
    const double ratio = std::chrono::duration<double>(resolve_time).count() / std::chrono::duration<double>(build_time).count();
    BOOST_TEST_MESSAGE("suggestions among " << layers << " layers: " << std::chrono::duration<double>(resolve_time).count() << " s, "
                                            << ratio << "x the table's build time");
    BOOST_TEST((resolve_time < 20 * build_time + std::chrono::seconds(1)), "suggestions took " << ratio << "x the table's build time");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(quant_layers_argument)

BOOST_AUTO_TEST_CASE(forms_of_the_argument) {
    auto parse = [](std::string_view text, std::vector<kvcali::diagnostic>& out) {
        kvcali::diagnostics d;
        auto q = kvcali::parse_quant_layers_json(text, "arg", d);
        out = d.take();
        return q;
    };
    std::vector<kvcali::diagnostic> ds;
    auto ok = parse(R"({"kv_cache_quant_layers": ["a", "b"], "other": 1})", ds);
    BOOST_TEST_REQUIRE(ok.has_value());
    BOOST_TEST(ok->names == (std::vector<std::string>{"a", "b"}), boost::test_tools::per_element());
    BOOST_TEST_REQUIRE(ds.size() == 1u);
    BOOST_TEST((ds[0].severity == kvcali::severity::warning));
    BOOST_TEST(parse("{}", ds)->names.empty());
    BOOST_TEST(!parse(R"({"layers": ["a"]})", ds).has_value());
    BOOST_TEST((ds.at(0).category == kvcali::errc::invalid_argument));
    BOOST_TEST(!parse(R"({"kv_cache_quant_layers": [1]})", ds).has_value());
    BOOST_TEST(!parse(R"(["a"])", ds).has_value());
    BOOST_TEST(!parse(R"({"kv_cache_quant_layers": "a"})", ds).has_value());
}

BOOST_AUTO_TEST_SUITE_END()

// A downstream framework's policies: other IFMR defaults and an algorithm of its own.
namespace downstream {

struct tuned_ifmr : kvcali::ifmr_defaults {
    static constexpr float search_step = 0.005f;
    static constexpr std::int32_t quant_granularity = 1;
};

struct minmax_policy {
    static constexpr std::string_view act_algo = "minmax";
    static constexpr std::string_view cfg_block = "minmax_quantize";
    static constexpr std::array<kvcali::param_desc, 1> params = {{
        {"clip_ratio",
         "clip_ratio",
         -1,
         kvcali::param_type::float32,
         kvcali::param_value::of_float(1.0f),
         {},
         &kvcali::checks::positive,
         "fraction of the observed range kept"},
    }};
    static void cross_check(const kvcali::param_view&, std::vector<kvcali::check_result>&) {}
};

using policies = kvcali::policy_list<kvcali::basic_ifmr_policy<tuned_ifmr>, kvcali::hfmg_policy, minmax_policy>;

}  // namespace downstream

BOOST_AUTO_TEST_SUITE(policies)

BOOST_AUTO_TEST_CASE(changed_defaults_reach_the_json) {
    temp_dir dir;
    kvcali::create_quant_cali_config<downstream::policies>(dir / "config.json", three_linears(), kvcali::quant_layers{"matmul1"});
    const std::string json = slurp(dir / "config.json");
    BOOST_TEST(json.find("\"search_step\":0.005,") != std::string::npos, json);
    BOOST_TEST(json.find("\"quant_granularity\":1") != std::string::npos, json);
    BOOST_TEST(json.find("\"search_range\":[\n                0.7,") != std::string::npos, json);
}

BOOST_AUTO_TEST_CASE(a_policy_of_its_own_is_written_with_its_parameters) {
    kvcali::resolved_config doc = kvcali::resolve_quant_cali_config<downstream::policies>(three_linears(), kvcali::quant_layers{"matmul1"});
    doc.layers[0].algorithm = 2;
    doc.layers[0].values = {kvcali::param_value::of_float(0.9f)};
    const std::string json = kvcali::write_config_json(doc);
    BOOST_TEST(json.find("\"act_algo\":\"minmax\",\n            \"clip_ratio\":0.9\n") != std::string::npos, json);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(non_throwing)

BOOST_AUTO_TEST_CASE(try_form_returns_diagnostics) {
    temp_dir dir;
    auto bad = kvcali::try_create_quant_cali_config(dir / "c.json", three_linears(), kvcali::quant_layers{});
    BOOST_TEST(!bad);
    BOOST_TEST((bad.code() == kvcali::errc::no_quant_layers));
    BOOST_TEST(dir.entries().empty());
    auto good = kvcali::try_create_quant_cali_config(dir / "c.json", three_linears(), kvcali::quant_layers{"matmul1"});
    BOOST_TEST(static_cast<bool>(good));
    BOOST_TEST(good.value->layers.size() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()

// User graphs whose layer names and type names come back by value (std::string temporaries) or as
// references: both are read into the same table. Names are long enough to live on the heap.
namespace user_graphs {

struct layer_data {
    std::string path;
    std::string kind;
};

inline std::vector<layer_data> long_named_layers() {
    std::vector<layer_data> out;
    for (int i = 0; i < 4; ++i) {
        const std::string prefix = "model.decoder.transformer_blocks." + std::to_string(i) + ".self_attention.";
        out.push_back({prefix + "key_projection", "LinearWithAVeryLongTypeNameThatDefeatsSSO"});
        out.push_back({prefix + "value_projection", "LinearWithAVeryLongTypeNameThatDefeatsSSO"});
        out.push_back({prefix + "layer_norm_module", "RMSNormWithAVeryLongTypeNameThatDefeatsSSO"});
    }
    return out;
}

struct by_value_layer {
    layer_data d;
    std::string name() const { return d.path; }
    std::string type_name() const { return d.kind; }
};
struct by_value_graph {
    std::vector<by_value_layer> all;
    std::vector<by_value_layer> layers() const { return all; }  // the range itself by value, too
    bool supports_kv_quant(std::string_view type) const { return type.starts_with("Linear"); }
};

struct by_reference_layer {
    layer_data d;
    const std::string& name() const { return d.path; }
    const std::string& type_name() const { return d.kind; }
};
struct by_reference_graph {
    std::vector<by_reference_layer> all;
    const std::vector<by_reference_layer>& layers() const { return all; }
    bool supports_kv_quant(std::string_view type) const { return type.starts_with("Linear"); }
};

// A foreign graph adapted by traits that return std::string by value.
struct foreign_ir {
    std::vector<layer_data> nodes;
};

}  // namespace user_graphs

template <>
struct kvcali::model_graph_traits<user_graphs::foreign_ir> {
    static const std::vector<user_graphs::layer_data>& layers(const user_graphs::foreign_ir& g) { return g.nodes; }
    static std::string name(const user_graphs::layer_data& l) { return l.path; }
    static std::string type_name(const user_graphs::layer_data& l) { return l.kind; }
    static bool supports_kv_quant(const user_graphs::foreign_ir&, std::string_view type) { return type.starts_with("Linear"); }
};

BOOST_AUTO_TEST_SUITE(graphs_returning_strings_by_value)

BOOST_AUTO_TEST_CASE(by_value_and_by_reference_give_the_same_config) {
    using namespace user_graphs;
    static_assert(kvcali::model_graph<by_value_graph>);
    static_assert(kvcali::model_graph<by_reference_graph>);
    static_assert(kvcali::model_graph<foreign_ir>);
    by_value_graph by_value;
    by_reference_graph by_reference;
    foreign_ir foreign;
    for (const auto& d : long_named_layers()) {
        by_value.all.push_back({d});
        by_reference.all.push_back({d});
        foreign.nodes.push_back(d);
    }
    const kvcali::quant_layers selected{"model.decoder.transformer_blocks.0.self_attention.key_projection",
                                        "model.decoder.transformer_blocks.3.self_attention.value_projection",
                                        "model.decoder.transformer_blocks.2.self_attention.key_projection"};
    const std::string want = kvcali::write_config_json(kvcali::resolve_quant_cali_config(by_reference, selected));
    BOOST_TEST(want.find("\"model.decoder.transformer_blocks.3.self_attention.value_projection\":{") != std::string::npos, want);
    BOOST_TEST(kvcali::write_config_json(kvcali::resolve_quant_cali_config(by_value, selected)) == want);
    BOOST_TEST(kvcali::write_config_json(kvcali::resolve_quant_cali_config(foreign, selected)) == want);

    // The table holds the names and types themselves, and the eligibility of each type.
    const auto table = kvcali::extract_layers(by_value, [](std::string_view) { BOOST_FAIL("no duplicates here"); });
    const auto layers = long_named_layers();
    BOOST_REQUIRE_EQUAL(table.size(), layers.size());
    for (std::size_t i = 0; i < layers.size(); ++i) {
        BOOST_TEST(table[i].name == layers[i].path);
        BOOST_TEST(table[i].type == layers[i].kind);
        BOOST_TEST(table[i].eligible == layers[i].kind.starts_with("Linear"));
    }
    // A layer that is not eligible is reported by its (copied) type name.
    try {
        kvcali::resolve_quant_cali_config(by_value,
                                          kvcali::quant_layers{"model.decoder.transformer_blocks.1.self_attention.layer_norm_module"});
        BOOST_FAIL("expected unsupported_layer_type");
    } catch (const kvcali::error& e) {
        BOOST_TEST((e.code() == kvcali::errc::unsupported_layer_type));
        BOOST_TEST(std::string(e.what()).find("RMSNormWithAVeryLongTypeNameThatDefeatsSSO") != std::string::npos, e.what());
    }
}

BOOST_AUTO_TEST_CASE(duplicate_names_returned_by_value_are_reported_by_name) {
    user_graphs::by_value_graph g;
    const std::string name = "model.decoder.transformer_blocks.0.self_attention.key_projection";
    g.all.push_back({{name, "LinearWithAVeryLongTypeNameThatDefeatsSSO"}});
    g.all.push_back({{name, "LinearWithAVeryLongTypeNameThatDefeatsSSO"}});
    std::vector<std::string> duplicates;
    const auto table = kvcali::extract_layers(g, [&](std::string_view n) { duplicates.emplace_back(n); });
    BOOST_TEST(table.size() == 1u);
    BOOST_TEST(duplicates == std::vector<std::string>{name}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------------
// Issue 15: rough edges found by a new user.

BOOST_AUTO_TEST_SUITE(new_user_rough_edges)

BOOST_AUTO_TEST_CASE(an_empty_model_is_one_invalid_model_error) {
    const kvcali::layer_table empty;
    for (const auto& layers :
         {std::optional<kvcali::quant_layers>(kvcali::quant_layers{"a", "b", "glob:*"}), std::optional<kvcali::quant_layers>()}) {
        try {
            (void)kvcali::resolve_quant_cali_config(empty, layers);
            BOOST_FAIL("an empty model was accepted");
        } catch (const kvcali::error& e) {
            BOOST_TEST((e.code() == kvcali::errc::invalid_model));
            BOOST_TEST_REQUIRE(e.diagnostics().size() == 1u);
            BOOST_TEST(e.diagnostics()[0].message == "the model has no layers");
            BOOST_TEST(e.diagnostics()[0].message == kvcali::model_has_no_layers);
        }
    }
    // The non-throwing form says the same.
    temp_dir dir;
    const auto r = kvcali::try_create_quant_cali_config(dir / "c.json", empty, kvcali::quant_layers{"a"});
    BOOST_TEST(!r);
    BOOST_TEST((r.code() == kvcali::errc::invalid_model));
    BOOST_TEST(r.diagnostics().size() == 1u);
    BOOST_TEST(dir.entries().empty());
}

BOOST_AUTO_TEST_CASE(outcome_reads_like_error) {
    // One shape: diagnostics() and code() are functions on both.
    static_assert(
        std::is_same_v<decltype(std::declval<const kvcali::outcome<int>&>().diagnostics()), const std::vector<kvcali::diagnostic>&>);
    static_assert(std::is_same_v<decltype(std::declval<const kvcali::error&>().diagnostics()), const std::vector<kvcali::diagnostic>&>);
    static_assert(std::is_same_v<decltype(std::declval<const kvcali::outcome<int>&>().code()), std::optional<kvcali::errc>>);
    const kvcali::outcome<int> ok(7, {{.severity = kvcali::severity::warning,
                                       .category = kvcali::errc::invalid_value,
                                       .message = "w",
                                       .where = {},
                                       .layer = {},
                                       .json_path = {}}});
    BOOST_TEST(static_cast<bool>(ok));
    BOOST_TEST(*ok.value == 7);
    BOOST_TEST(ok.diagnostics().size() == 1u);
    BOOST_TEST(!ok.code().has_value());
    const kvcali::error e(kvcali::diagnostic{.severity = kvcali::severity::error,
                                             .category = kvcali::errc::io_error,
                                             .message = "e",
                                             .where = {},
                                             .layer = {},
                                             .json_path = {}});
    const kvcali::outcome<int> failed(e);
    BOOST_TEST(!failed);
    BOOST_TEST((failed.code() == kvcali::errc::io_error));
    BOOST_TEST_REQUIRE(failed.diagnostics().size() == 1u);
    BOOST_TEST(failed.diagnostics()[0].to_string() == e.diagnostics()[0].to_string());
    // Warnings reach the outcome of a call that succeeds.
    temp_dir dir;
    spit(dir / "w.cfg", "batch_num: 1\nbatch_num: 2\nkv_cache_quant_config { quant_layers: 'matmul1' }\n");
    const auto warned = kvcali::try_create_quant_cali_config(dir / "c.json", three_linears(), std::nullopt, dir / "w.cfg");
    BOOST_TEST(static_cast<bool>(warned));
    BOOST_TEST(warned.diagnostics().size() == 1u);
}

namespace {
std::vector<kvcali::diagnostic> layer_list_problems(std::string_view text) {
    kvcali::diagnostics d;
    (void)kvcali::parse_layer_list(text, "m.json", d);
    return d.take();
}
}  // namespace

BOOST_AUTO_TEST_CASE(layer_list_errors_carry_line_column_and_layer) {
    const auto typo = layer_list_problems("[\n  {\"name\": \"a\", \"typ\": \"Linear\"}\n]");
    BOOST_TEST_REQUIRE(typo.size() == 1u);
    BOOST_TEST(typo[0].to_string() == "m.json:2:17: error: [0]: unknown key \"typ\"; did you mean \"type\"? [invalid_model]");
    const auto nmae = layer_list_problems(R"([{"nam": "a", "type": "Linear"}])");
    BOOST_TEST_REQUIRE(nmae.size() == 1u);
    BOOST_TEST(nmae[0].to_string() == "m.json:1:3: error: [0]: unknown key \"nam\"; did you mean \"name\"? [invalid_model]");
    // Nothing near: where the entry starts.
    const auto none = layer_list_problems("[{\"name\": \"a\"},\n {\"name\": \"b\", \"kind\": \"Linear\"}]");
    BOOST_TEST_REQUIRE(none.size() == 2u);
    BOOST_TEST(none[0].to_string() ==
               "m.json:1:2: error: [0] has no \"type\" (a layer is {\"name\": string, \"type\": string}) [invalid_model]");
    BOOST_TEST(none[1].where.line == 2u);
    BOOST_TEST(none[1].where.column == 2u);
    // Other problems, each at its value.
    const auto other = layer_list_problems(
        "[{\"name\": 3, \"type\": \"Linear\"},\n {\"name\": \"k\", \"type\": null},\n {\"name\": \"\", \"type\": \"Linear\"},\n"
        " {\"name\": \"k\", \"type\": \"Linear\"},\n {\"name\": \"k\", \"type\": \"Linear\"}, 7]");
    BOOST_TEST_REQUIRE(other.size() == 5u);
    BOOST_TEST(other[0].to_string() == "m.json:1:11: error: [0].name must be a string, not 3 [invalid_model]");
    BOOST_TEST(other[1].to_string() == "m.json:2:24: error: [1].type of layer \"k\" must be a string, not null [invalid_model]");
    BOOST_TEST(other[2].where.line == 3u);
    BOOST_TEST(other[2].where.column == 11u);
    BOOST_TEST(other[3].to_string() == "m.json:5:11: error: [4].name: layer \"k\" is listed twice [invalid_model]");
    BOOST_TEST(other[3].layer == "k");
    BOOST_TEST(other[4].to_string() == "m.json:5:35: error: [5] must be an object {\"name\", \"type\"} [invalid_model]");
    const auto object = layer_list_problems("\n\n  {\"name\": \"a\"}");
    BOOST_TEST_REQUIRE(object.size() == 1u);
    BOOST_TEST(object[0].where.line == 3u);
    BOOST_TEST(object[0].where.column == 3u);
}

BOOST_AUTO_TEST_CASE(layer_list_syntax_errors_carry_line_and_column) {
    const auto bad = layer_list_problems("[\n {\"name\": \"a\", \"type\": \"Linear\"},\n {\"name\": \"b\" \"type\": \"Linear\"}\n]");
    BOOST_TEST_REQUIRE(bad.size() == 1u);
    BOOST_TEST(bad[0].to_string() ==
               "m.json:3:15: error: the layer list is not valid JSON: expected ',' or '}' in an object, found '\"' [invalid_model]");
    // Problems of earlier entries are not reported when the text is not JSON (as one parse of the whole).
    const auto late = layer_list_problems("[{\"name\": \"\", \"type\": \"Linear\"},\n {\"name\": \"b\", \"type\": \"Linear\"},]");
    BOOST_TEST_REQUIRE(late.size() == 1u);
    BOOST_TEST(late[0].to_string() ==
               "m.json:2:34: error: the layer list is not valid JSON: expected a JSON value, found ']' [invalid_model]");
    const auto trailing = layer_list_problems("[]\n x");
    BOOST_TEST_REQUIRE(trailing.size() == 1u);
    BOOST_TEST(trailing[0].where.line == 2u);
    BOOST_TEST(trailing[0].where.column == 2u);
    // NaN and Infinity are not JSON here (config.json's reader reads them to say what they are).
    BOOST_TEST(layer_list_problems(R"([{"name": "k", "type": "Linear", "x": NaN}])").size() == 1u);
}

BOOST_AUTO_TEST_CASE(layer_list_repeated_keys_keep_the_last) {
    kvcali::diagnostics d;
    const auto t = kvcali::parse_layer_list(R"([{"name": 3, "type": "Linear", "name": "b"}, {"type": "X", "name": "c", "type": "Linear"}])",
                                            "m.json", d);
    BOOST_TEST(!d.has_errors());
    BOOST_TEST_REQUIRE(t.size() == 2u);
    BOOST_TEST(t[0].name == "b");
    BOOST_TEST(t[1].type == "Linear");
    // A key written with escapes is the same key, and problems point at it.
    const auto escaped = layer_list_problems(R"([{"n\u0061me": 3, "type": "Linear"}])");
    BOOST_TEST_REQUIRE(escaped.size() == 1u);
    BOOST_TEST(escaped[0].to_string() == "m.json:1:16: error: [0].name must be a string, not 3 [invalid_model]");
}

namespace {
/// Loading `file` (read in pieces) fails with the diagnostics that parsing its whole text gave, `whole`.
void loading_reports_the_same(const std::filesystem::path& file, const kvcali::diagnostics& whole) {
    try {
        (void)kvcali::load_layer_list(file);
        BOOST_FAIL(file.filename().string() << " loaded without the errors its whole text has");
    } catch (const kvcali::error& e) {
        BOOST_TEST_REQUIRE(e.diagnostics().size() == whole.items().size());
        for (std::size_t i = 0; i < whole.items().size(); ++i) BOOST_TEST(e.diagnostics()[i].to_string() == whole.items()[i].to_string());
    }
}
}  // namespace

BOOST_AUTO_TEST_CASE(layer_list_files_are_read_in_pieces_with_the_same_diagnostics) {
    // Over several 64 KiB pieces, with entries (and one long name) cut by their ends.
    std::string text = "[\n";
    for (int i = 0; i < 6000; ++i) {
        text += "  {\"name\": \"model.layers." + std::to_string(i) +
                ".k\", \"type\": \"Linear\", \"in\": 8, \"out\": " + std::to_string(i) + "},\n";
    }
    text += "  {\"name\": \"" + std::string(200000, 'x') + "\", \"type\": \"Linear\"},\n";
    text += "  {\"name\": \"model.layers.7.k\", \"type\": \"Linear\"},\n  {\"name\": \"z\", \"type\": \"Linear\", \"out\": -1}\n]\n";
    temp_dir dir;
    spit(dir / "big.json", text);
    kvcali::diagnostics d;
    (void)kvcali::parse_layer_list(text, (dir / "big.json").string(), d);
    BOOST_TEST_REQUIRE(d.error_count() == 2u);
    BOOST_TEST(d.items()[0].where.line == 6003u);
    BOOST_TEST(d.items()[0].json_path == "[6001].name");
    loading_reports_the_same(dir / "big.json", d);
    text.resize(text.size() - 97);  // without the last two entries
    text += "{\"name\": \"y\", \"type\": \"Linear\"}]";
    spit(dir / "good.json", text);
    const auto table = kvcali::load_layer_list(dir / "good.json");
    BOOST_TEST(table.size() == 2u + 6000u * 2u + 2u);  // model, model.layers; model.layers.N and .k; the long name, y
    // Each entry's other members, as the export reads "out" (read_layer_output_features).
    std::map<std::string, std::optional<std::uint64_t>, std::less<>> features;
    (void)kvcali::detail::load_layer_list(dir / "good.json", kvcali::is_torch_linear,
                                          [&](const kvcali::detail::layer_list_entry& e) { features[std::string(e.name)] = e.out; });
    BOOST_TEST(features.size() == 6002u);
    BOOST_TEST((features.at("model.layers.5999.k") == std::optional<std::uint64_t>(5999)));
    BOOST_TEST(!features.at("y").has_value());
}

BOOST_AUTO_TEST_CASE(the_usual_element_shape_reads_as_any_other) {
    // {"name": "...", "type": "..."} with plain strings is read by the JSON reader's fast branch;
    // every other way of writing the same element goes the general way, with the same answer.
    for (const std::string element :
         {R"({"name":"a.b","type":"Linear"})", "{ \"name\" :\t\"a.b\" ,\r\n \"type\" : \"Linear\" }",
          R"({"type": "Linear", "name": "a.b"})", R"({"n\u0061me": "a.b", "type": "Linear"})", R"({"name": "a\u002eb", "type": "Linear"})",
          R"({"name": "a.b", "type": "Linear", "out": 3})", R"({"name": "a.b", "type": "Conv", "type": "Linear"})",
          R"({"name": "x", "type": "Linear", "name": "a.b"})"}) {
        kvcali::diagnostics d;
        const auto t = kvcali::parse_layer_list("[" + element + "]", "m.json", d);
        BOOST_TEST(!d.has_errors(), element);
        BOOST_TEST_REQUIRE(t.size() == 2u, element);  // a, a.b
        BOOST_TEST(t[1].name == "a.b", element);
        BOOST_TEST(t[1].type == "Linear", element);
        BOOST_TEST(t[1].eligible, element);
    }
    // Problems of elements of that shape point into them, in pieces as in the whole text: a list of
    // 20000 such elements (several 64 KiB pieces) with an empty name and a repeated one far in.
    std::string text = "[";
    for (int i = 0; i < 20000; ++i) {
        const std::string name = i == 12345 ? "" : i == 19999 ? "m.7" : "m." + std::to_string(i);
        text += std::string(i == 0 ? "" : ",\n") + "{\"name\": \"" + name + "\", \"type\": \"Linear\"}";
    }
    text += "]";
    temp_dir dir;
    spit(dir / "plain.json", text);
    kvcali::diagnostics d;
    (void)kvcali::parse_layer_list(text, (dir / "plain.json").string(), d);
    BOOST_TEST_REQUIRE(d.error_count() == 2u);
    BOOST_TEST(d.items()[0].to_string() ==
               (dir / "plain.json").string() + ":12346:10: error: [12345].name is empty (the root module is not a layer) [invalid_model]");
    BOOST_TEST(d.items()[1].to_string() ==
               (dir / "plain.json").string() + ":20000:10: error: [19999].name: layer \"m.7\" is listed twice [invalid_model]");
    loading_reports_the_same(dir / "plain.json", d);
    // A cut element is a syntax error where the general reader finds it.
    const auto cut = layer_list_problems("[{\"name\": \"a\", \"type\": \"Linear\"");
    BOOST_TEST_REQUIRE(cut.size() == 1u);
    BOOST_TEST(cut[0].to_string() ==
               "m.json:1:32: error: the layer list is not valid JSON: expected ',' or '}' in an object, found the end of the text "
               "[invalid_model]");
}

BOOST_AUTO_TEST_CASE(layer_list_in_and_out_are_non_negative_integers) {
    // Accepted, with plain strings and with escapes (the slow branch of the string reader).
    for (const std::string_view text : {R"([{"name": "k", "type": "Linear", "in": 0, "out": 4096}])",
                                        R"([{"name": "k", "type": "Linear", "in": 0, "out": 4096, "x": "\u0041"}])",
                                        R"([{"name": "k", "type": "Linear", "in": 18446744073709551615}])"}) {
        BOOST_TEST_CONTEXT(text) {
            kvcali::diagnostics d;
            const auto t = kvcali::parse_layer_list(text, "m.json", d);
            BOOST_TEST(!d.has_errors());
            BOOST_TEST(t.size() == 1u);
        }
    }
    const std::pair<std::string_view, std::string> refused[] = {
        {R"([{"name": "k", "type": "Linear", "in": -1}])",
         "m.json:1:40: error: [0].in of layer \"k\" must be a non-negative integer, not -1 [invalid_model]"},
        {R"([{"name": "k", "type": "Linear", "out": 8.0}])",
         "m.json:1:41: error: [0].out of layer \"k\" must be a non-negative integer, not 8.0 [invalid_model]"},
        {R"([{"name": "k", "type": "Linear", "out": 1e3}])",
         "m.json:1:41: error: [0].out of layer \"k\" must be a non-negative integer, not 1e3 [invalid_model]"},
        {R"([{"name": "k", "type": "Linear", "in": "8"}])",
         "m.json:1:40: error: [0].in of layer \"k\" must be a non-negative integer, not \"8\" [invalid_model]"},
        {R"([{"name": "k", "type": "Linear", "in": null}])",
         "m.json:1:40: error: [0].in of layer \"k\" must be a non-negative integer, not null [invalid_model]"},
        {R"([{"name": "k", "type": "Linear", "in": [8]}])",
         "m.json:1:40: error: [0].in of layer \"k\" must be a non-negative integer, not [8] [invalid_model]"},
    };
    for (const auto& [text, want] : refused) {
        BOOST_TEST_CONTEXT(text) {
            const auto ds = layer_list_problems(text);
            BOOST_TEST_REQUIRE(ds.size() == 1u);
            BOOST_TEST(ds[0].to_string() == want);
            BOOST_TEST(ds[0].layer == "k");
        }
    }
}

BOOST_AUTO_TEST_CASE(layer_names_as_a_bare_json_array) {
    kvcali::diagnostics d;
    const auto q = kvcali::parse_layer_names_json(R"([ "matmul1", "matmul2" ])", "--quant-layers", d);
    BOOST_TEST_REQUIRE(q.has_value());
    BOOST_TEST(q->names == (std::vector<std::string>{"matmul1", "matmul2"}), boost::test_tools::per_element());
    BOOST_TEST(!d.has_errors());
    kvcali::diagnostics bad;
    BOOST_TEST(!kvcali::parse_layer_names_json(R"(["a", 1, {}])", "x", bad).has_value());
    BOOST_TEST(bad.error_count() == 2u);
    BOOST_TEST(bad.items()[0].json_path == "$[1]");
    kvcali::diagnostics object;
    BOOST_TEST(!kvcali::parse_layer_names_json(R"({"kv_cache_quant_layers": []})", "x", object).has_value());
    BOOST_TEST((object.items()[0].category == kvcali::errc::invalid_argument));
    // The argument itself stays the object form (spec §1): a bare array is refused there.
    kvcali::diagnostics spec;
    BOOST_TEST(!kvcali::parse_quant_layers_json(R"(["matmul1"])", "x", spec).has_value());
    BOOST_TEST(spec.has_errors());
}

BOOST_AUTO_TEST_CASE(messages_show_floats_as_the_shortest_text) {
    temp_dir dir;
    spit(dir / "q.cfg",
         "kv_cache_quant_config { quant_layers: 'matmul1' calibration_config { ifmr_quantize { search_range_start: 1.5 "
         "search_range_end: 1.25 } } }\n");
    try {
        (void)kvcali::resolve_quant_cali_config(three_linears(), std::nullopt, dir / "q.cfg");
        BOOST_FAIL("start > end was accepted");
    } catch (const kvcali::error& e) {
        BOOST_TEST(
            std::string(e.what()).find("search_range_start (1.5) must not be greater than search_range_end (1.25)") != std::string::npos,
            e.what());
    }
    spit(dir / "w.cfg", "kv_cache_quant_config { quant_layers: 'matmul1' calibration_config { ifmr_quantize { search_step: 0.9 } } }\n");
    std::string warning;
    kvcali::options opts;
    opts.on_warning = [&](const kvcali::diagnostic& d) { warning += d.message; };
    (void)kvcali::resolve_quant_cali_config(three_linears(), std::nullopt, dir / "w.cfg", opts);
    BOOST_TEST(warning.find("search_step (0.9) is larger than the search range [0.7, 1.3]") != std::string::npos, warning);
    BOOST_TEST(warning.find("000") == std::string::npos, warning);
}

BOOST_AUTO_TEST_SUITE_END()
