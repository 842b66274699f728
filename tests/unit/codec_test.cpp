// The envelope header codec: golden vectors from docs/wire-protocol.md (produced independently
// with Python's msgpack package), round trips, and every class of malformed input.
#include <zmqkit/codec.hpp>

#include "support/testing.hpp"
#include "support/unknown_entries.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

using namespace zmqkit;
using zmqkit::testing::to_hex;

namespace {

std::string unhex(std::string_view hex) {
    std::string out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
        out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
    }
    return out;
}

message_id id_of(std::string_view text) {
    return *message_id::parse(text);
}

// docs/wire-protocol.md, "Golden vectors".
constexpr std::string_view vector_minimal =
    "83000101c4100193f1a2b3c47d5e8f0123456789abcd04cf180abe7135f8cd15";
constexpr std::string_view vector_full =
    "8d000101c4100193f1a2b3c47d5e8f0123456789abcd02c4100193f1a2b3c07000800000000000c0de03c41001"
    "93f1a2b3c27abc9fedcba98765432104cf180abe7135f8cd1505ad6f726465722e63726561746564060307b374"
    "63703a2f2f31302e302e302e353a3535353508d93730302d34626639326633353737623334646136613363653932"
    "396430653065343733362d303066303637616130626139303262372d303109b36170706c69636174696f6e2f6d73"
    "677061636b0a2a0b82a674656e616e74c40461636d65ac72657472792d726561736f6ec40774696d656f7574"
    "0cc4100193f1a2b3c17def8123456789abcdef";
constexpr std::string_view vector_unknown_keys =
    "85000101c4100193f1a2b3c47d5e8f0123456789abcd04cf180abe7135f8cd156393010281a161c0a178cb3ff8"
    "000000000000";
// A publication: sequence 7 and publisher id (key 12), 53 bytes.
constexpr std::string_view vector_publication =
    "85000101c4100193f1a2b3c47d5e8f0123456789abcd04cf180abe7135f8cd150a070cc4100193f1a2b3c17def"
    "8123456789abcdef";
// The same from a publisher before key 12: the id in the user header "zmqkit-publisher", 71 bytes.
constexpr std::string_view vector_publication_legacy =
    "85000101c4100193f1a2b3c47d5e8f0123456789abcd04cf180abe7135f8cd150a070b81b07a6d716b69742d70"
    "75626c6973686572c4100193f1a2b3c17def8123456789abcdef";
constexpr std::string_view vector_version_2 =
    "83000201c4100193f1a2b3c47d5e8f0123456789abcd04cf180abe7135f8cd15";

header minimal_header() {
    header h;
    h.id = id_of("0193f1a2-b3c4-7d5e-8f01-23456789abcd");
    h.correlation_id = h.id;
    h.timestamp_ns = 1732406400123456789ULL;
    return h;
}

header full_header() {
    header h = minimal_header();
    h.correlation_id = id_of("0193f1a2-b3c0-7000-8000-00000000c0de");
    h.causation_id = id_of("0193f1a2-b3c2-7abc-9fed-cba987654321");
    h.type = "order.created";
    h.attempt = 3;
    h.reply_to = "tcp://10.0.0.5:5555";
    h.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    h.content_type = "application/msgpack";
    h.sequence = 42;
    h.user_headers = {{"tenant", "acme"}, {"retry-reason", "timeout"}};
    h.publisher_id = id_of("0193f1a2-b3c1-7def-8123-456789abcdef");
    return h;
}

header publication_header() {
    header h = minimal_header();
    h.sequence = 7;
    h.publisher_id = id_of("0193f1a2-b3c1-7def-8123-456789abcdef");
    return h;
}

decode_status decode(std::string_view bytes, header& out) {
    return decode_header(bytes.data(), bytes.size(), out);
}

} // namespace

TEST(codec, minimal_header_matches_golden_vector) {
    const auto h = minimal_header();
    EXPECT_EQ(to_hex(encode_header(h)), vector_minimal);
    EXPECT_EQ(encoded_size(h), vector_minimal.size() / 2);
}

TEST(codec, full_header_matches_golden_vector) {
    const auto h = full_header();
    EXPECT_EQ(to_hex(encode_header(h)), vector_full);
    EXPECT_EQ(encoded_size(h), vector_full.size() / 2);
}

TEST(codec, golden_vectors_decode_to_their_headers) {
    header out;
    ASSERT_TRUE(decode(unhex(vector_minimal), out)) << "minimal";
    EXPECT_EQ(out, minimal_header());
    EXPECT_EQ(out.correlation_id, out.id) << "absent correlation id means 'same as id'";
    ASSERT_TRUE(decode(unhex(vector_full), out)) << "full";
    EXPECT_EQ(out, full_header());
}

TEST(codec, publication_header_matches_golden_vector) {
    const auto h = publication_header();
    EXPECT_EQ(to_hex(encode_header(h)), vector_publication);
    EXPECT_EQ(encoded_size(h), 53U);
    header out;
    ASSERT_TRUE(decode(unhex(vector_publication), out));
    EXPECT_EQ(out, h);
}

TEST(codec, legacy_publication_decodes_with_its_user_header) {
    // The codec does not interpret user headers: the id stays one (patterns::publisher_id_of
    // reads either form).
    header out;
    ASSERT_TRUE(decode(unhex(vector_publication_legacy), out));
    EXPECT_TRUE(out.publisher_id.is_nil());
    ASSERT_EQ(out.user_headers.size(), 1U);
    EXPECT_EQ(out.user_headers[0].first, "zmqkit-publisher");
    EXPECT_EQ(to_hex(out.user_headers[0].second), "0193f1a2b3c17def8123456789abcdef");
    EXPECT_EQ(out.sequence, 7U);
}

TEST(codec, publisher_id_is_omitted_when_nil_and_nil_on_the_wire_means_absent) {
    header h = minimal_header();
    EXPECT_EQ(to_hex(encode_header(h)), vector_minimal);
    // key 12 = 16 zero bytes: accepted, read as absent (like a nil correlation id)
    const std::string nil = "0cc410" + std::string(32, '0');
    header out;
    const auto st = decode(unhex("84" + std::string(vector_minimal).substr(2) + nil), out);
    ASSERT_TRUE(st) << st.message();
    EXPECT_TRUE(out.publisher_id.is_nil());
    EXPECT_EQ(out, minimal_header());
}

TEST(codec, unknown_keys_are_ignored) {
    header out;
    const auto st = decode(unhex(vector_unknown_keys), out);
    ASSERT_TRUE(st) << st.message();
    // The known fields are the minimal header's; the two unknown entries are kept verbatim.
    EXPECT_EQ(to_hex(out.unknown.bytes), "6393010281a161c0a178cb3ff8000000000000");
    EXPECT_EQ(out.unknown.count, 2U);
    header known = out;
    known.unknown = {};
    EXPECT_EQ(known, minimal_header());
}

// docs/wire-protocol.md §6: a device that decodes a header, changes a field and encodes it
// again passes the keys it does not know on, byte for byte.
TEST(codec, unknown_keys_survive_a_decode_and_encode_byte_for_byte) {
    header out;
    ASSERT_TRUE(decode(unhex(vector_unknown_keys), out));
    EXPECT_EQ(to_hex(encode_header(out)), vector_unknown_keys);
    EXPECT_EQ(encoded_size(out), vector_unknown_keys.size() / 2);

    const auto entries = zmqkit::testing::unknown_entries_of_every_type();
    const header full = full_header();
    const std::string plain = encode_header(full);
    const std::string frame = zmqkit::testing::with_unknown_entries(plain, plain.size(), entries);
    header h;
    const auto st = decode(frame, h);
    ASSERT_TRUE(st) << st.message();
    EXPECT_EQ(h.unknown.count, entries.size());
    header known = h;
    known.unknown = {};
    EXPECT_EQ(known, full);
    // Re-encoded as it came (zmqkit writes unknown entries after key 12, where they were).
    EXPECT_EQ(to_hex(encode_header(h)), to_hex(frame));
    // A rewrite of a known field keeps every entry.
    h.attempt = 4;
    h.set_user_header("zmqkit-dead-letter-reason", "poison");
    const std::string rewritten = encode_header(h);
    EXPECT_EQ(encoded_size(h), rewritten.size());
    zmqkit::testing::expect_unknown_entries_intact(rewritten, 13, entries, "rewritten");
    header again;
    ASSERT_TRUE(decode(rewritten, again));
    EXPECT_EQ(again.attempt, 4U);
    EXPECT_EQ(again.unknown, h.unknown);
    // With an inline body after the header: the body follows the entries unchanged.
    const std::string with_body =
        zmqkit::testing::with_unknown_entries(plain + "body", plain.size(), entries);
    std::size_t header_size = 0;
    ASSERT_TRUE(decode_header(with_body.data(), with_body.size(), again, &header_size));
    EXPECT_EQ(with_body.substr(header_size), "body");
    EXPECT_EQ(again.unknown, h.unknown);

    // follow_up() starts a new message: the cause's unknown entries are not copied.
    EXPECT_TRUE(header::follow_up(h).unknown.empty());
    // A repeated version key is not an unknown entry (the version is written first anyway).
    ASSERT_TRUE(decode(unhex("84" + std::string(vector_minimal).substr(2) + "0001"), again));
    EXPECT_TRUE(again.unknown.empty());
    // Decoding into a header that held unknown entries forgets them.
    ASSERT_TRUE(decode(unhex(vector_minimal), h));
    EXPECT_EQ(h, minimal_header());
}

TEST(codec, unknown_major_version_is_a_clear_error) {
    header out;
    const auto st = decode(unhex(vector_version_2), out);
    EXPECT_EQ(st.code, decode_errc::unsupported_version);
    EXPECT_EQ(st.value, 2U);
    EXPECT_NE(st.message().find("unsupported protocol version 2"), std::string::npos)
        << st.message();
}

TEST(codec, round_trips_extreme_values) {
    header h = full_header();
    h.timestamp_ns = ~std::uint64_t{0};
    h.sequence = 0xFFFFFFFFFFFFFFFFULL;
    h.attempt = 0xFFFFFFFFU;
    h.type = std::string(70000, 't');      // str32
    h.reply_to = std::string(300, 'r');    // str16
    h.content_type = std::string(40, 'c'); // str8
    h.user_headers.clear();
    for (int i = 0; i < 20; ++i) { // map16
        h.user_headers.emplace_back("k" + std::to_string(i),
                                    std::string(300, static_cast<char>(i)));
    }
    h.user_headers.emplace_back("empty", "");
    h.user_headers.emplace_back("binary", std::string("\0\xff\n", 3));
    const auto bytes = encode_header(h);
    EXPECT_EQ(bytes.size(), encoded_size(h));
    header out;
    const auto st = decode(bytes, out);
    ASSERT_TRUE(st) << st.message();
    EXPECT_EQ(out, h);
}

TEST(codec, defaults_are_omitted_on_the_wire) {
    header h = minimal_header();
    const auto base = encoded_size(h);
    h.attempt = 1;
    h.sequence = 0;
    EXPECT_EQ(encoded_size(h), base);
    h.attempt = 2;
    EXPECT_EQ(encoded_size(h), base + 2);
}

TEST(codec, decode_reuses_the_output_header) {
    header out = full_header();
    ASSERT_TRUE(decode(unhex(vector_minimal), out));
    EXPECT_TRUE(out.type.empty()) << "fields absent on the wire are reset";
    EXPECT_TRUE(out.user_headers.empty());
    EXPECT_TRUE(out.publisher_id.is_nil());
    EXPECT_EQ(out.attempt, 1U);
}

TEST(codec, decode_into_a_reused_header_keeps_user_header_entries_and_their_capacity) {
    header h = minimal_header();
    h.user_headers = {{"a-long-header-name-over-sso", std::string(40, 'v')}, {"b", "w"}};
    const auto two = encode_header(h);
    h.user_headers.resize(1);
    h.user_headers[0].second = std::string(30, 'x');
    const auto one = encode_header(h);
    header out;
    ASSERT_TRUE(decode(two, out));
    ASSERT_EQ(out.user_headers.size(), 2U);
    const auto* name_storage = out.user_headers[0].first.data();
    const auto* value_storage = out.user_headers[0].second.data();
    ASSERT_TRUE(decode(one, out));
    ASSERT_EQ(out.user_headers.size(), 1U) << "entries beyond the new count are removed";
    EXPECT_EQ(out, h);
    EXPECT_EQ(out.user_headers[0].first.data(), name_storage) << "string reused";
    EXPECT_EQ(out.user_headers[0].second.data(), value_storage) << "string reused";
    ASSERT_TRUE(decode(two, out));
    EXPECT_EQ(out.user_headers[1], (std::pair<std::string, std::string>("b", "w")));
    ASSERT_TRUE(decode(unhex(vector_minimal), out));
    EXPECT_TRUE(out.user_headers.empty());
}

// ---- malformed input: every class yields a typed error, never a crash ---------------------

TEST(codec_malformed, empty_frame_is_not_an_envelope) {
    header out;
    EXPECT_EQ(decode("", out).code, decode_errc::not_envelope);
}

TEST(codec_malformed, plain_text_is_not_an_envelope) {
    header out;
    const auto st = decode("hello world", out);
    EXPECT_EQ(st.code, decode_errc::not_envelope);
    EXPECT_NE(st.message().find("not a zmqkit envelope"), std::string::npos);
}

TEST(codec_malformed, map_without_version_first_is_not_an_envelope) {
    header out;
    EXPECT_EQ(decode(unhex("8101c410" + std::string(32, '0')), out).code,
              decode_errc::not_envelope);
    EXPECT_EQ(decode(unhex("80"), out).code, decode_errc::not_envelope);
    const auto st = decode(unhex("82cc0001" + std::string(vector_minimal).substr(6)), out);
    EXPECT_EQ(st.code, decode_errc::not_envelope) << "the first key must be the byte 00";
    EXPECT_NE(st.message().find("first key is not the byte 0x00"), std::string::npos)
        << st.message();
}

TEST(codec_malformed, every_truncation_of_the_full_vector_is_reported) {
    const auto bytes = unhex(vector_full);
    for (std::size_t n = 1; n < bytes.size(); ++n) {
        header out;
        const auto st = decode(std::string_view(bytes).substr(0, n), out);
        EXPECT_EQ(st.code, decode_errc::truncated) << "cut at " << n << ": " << st.message();
    }
}

TEST(codec_malformed, wrong_field_types_name_the_field) {
    const std::string id = "c410" + std::string("0193f1a2b3c47d5e8f0123456789abcd");
    const std::string ts = "04cf180abe7135f8cd15";
    struct bad_case {
        std::string hex;
        std::string field;
    };
    const bad_case cases[] = {
        {"83000101c408" + std::string(16, '1') + ts, "id"},              // 8-byte id
        {"83000101a3616263" + ts, "id"},                                 // id as a string
        {"830001" + std::string("01") + id + "04a3616263", "timestamp"}, // timestamp as a string
        {"830001" + std::string("01") + id + "04ff", "timestamp"},       // negative timestamp
        {"840001" + std::string("01") + id + ts + "06ff", "attempt"},    // negative attempt
        {"840001" + std::string("01") + id + ts + "06cf0000000100000000", "attempt"}, // > 2^32-1
        {"840001" + std::string("01") + id + ts + "05c3", "type"},               // type as a bool
        {"840001" + std::string("01") + id + ts + "0b93010203", "user_headers"}, // array
        {"840001" + std::string("01") + id + ts + "0b8101a0", "user_headers"},   // int key
        {"840001" + std::string("01") + id + ts + "02c4021234", "correlation_id"},
        {"840001" + std::string("01") + id + ts + "0cc4021234", "publisher_id"}, // 2 bytes
        {"840001" + std::string("01") + id + ts + "0ca3616263", "publisher_id"}, // a string
        {"840001" + std::string("01") + id + ts + "0c07", "publisher_id"},       // an integer
    };
    for (const auto& c : cases) {
        header out;
        const auto st = decode(unhex(c.hex), out);
        EXPECT_EQ(st.code, decode_errc::bad_field) << c.hex << ": " << st.message();
        EXPECT_EQ(st.field, c.field) << c.hex;
        EXPECT_NE(st.message().find(c.field), std::string::npos);
    }
}

TEST(codec_malformed, nil_id_is_rejected_and_nil_correlation_means_absent) {
    header out;
    const std::string nil = "c410" + std::string(32, '0');
    auto st = decode(unhex("830001" + std::string("01") + nil + "04cf180abe7135f8cd15"), out);
    EXPECT_EQ(st.code, decode_errc::bad_field);
    EXPECT_EQ(st.field, "id");
    st = decode(unhex("840001" + std::string("01c4100193f1a2b3c47d5e8f0123456789abcd") + "02" +
                      nil + "04cf180abe7135f8cd15"),
                out);
    ASSERT_TRUE(st) << st.message();
    EXPECT_EQ(out.correlation_id, out.id);
}

TEST(codec_malformed, missing_required_fields) {
    header out;
    auto st = decode(unhex("820001" + std::string("04cf180abe7135f8cd15")), out);
    EXPECT_EQ(st.code, decode_errc::missing_field);
    EXPECT_EQ(st.field, "id");
    st = decode(unhex("820001" + std::string("01c4100193f1a2b3c47d5e8f0123456789abcd")), out);
    EXPECT_EQ(st.code, decode_errc::missing_field);
    EXPECT_EQ(st.field, "timestamp");
}

TEST(codec_malformed, trailing_bytes_after_the_map) {
    header out;
    const auto st = decode(unhex(std::string(vector_minimal) + "00"), out);
    EXPECT_EQ(st.code, decode_errc::trailing_bytes);
    EXPECT_EQ(st.value, vector_minimal.size() / 2);
}

TEST(codec_malformed, huge_counts_with_little_data_are_truncations) {
    header out;
    // map32 claiming 4 billion entries
    EXPECT_EQ(decode(unhex("dfffffffff0001"), out).code, decode_errc::truncated);
    // unknown key whose value is an array32 of 4 billion items
    EXPECT_EQ(decode(unhex("82000163ddffffffff00"), out).code, decode_errc::truncated);
    // user headers map32 of 4 billion pairs
    const std::string prefix =
        "8400010" + std::string("1c4100193f1a2b3c47d5e8f0123456789abcd") + "04cf180abe7135f8cd15";
    EXPECT_EQ(decode(unhex(prefix + "0bdfffffffff"), out).code, decode_errc::truncated);
}

TEST(codec_malformed, deeply_nested_unknown_value_is_refused_without_recursion) {
    // unknown key 99 -> 200000 nested fixarrays of one element, ending in nil: past the
    // nesting limit at level 33, found without recursing (or reading the rest)
    std::string bytes = unhex("84000101c4100193f1a2b3c47d5e8f0123456789abcd04cf180abe7135f8cd1563");
    bytes.append(200000, '\x91');
    bytes.push_back('\xc0');
    header out;
    const auto st = decode(bytes, out);
    EXPECT_EQ(st.code, decode_errc::bad_field) << st.message();
    EXPECT_EQ(st.field, "unknown_key");
    EXPECT_NE(st.message().find("nested more than 32 levels deep"), std::string::npos)
        << st.message();
}

TEST(codec_malformed, reserved_byte_0xc1_is_rejected) {
    header out;
    const auto st =
        decode(unhex("84000101c4100193f1a2b3c47d5e8f0123456789abcd04cf180abe7135f8cd1563c1"), out);
    EXPECT_EQ(st.code, decode_errc::bad_field);
    EXPECT_EQ(st.field, "unknown_key");
    EXPECT_NE(st.message().find("got the reserved byte 0xc1"), std::string::npos) << st.message();
}

TEST(codec_malformed, error_codes_have_stable_names) {
    EXPECT_EQ(to_string(decode_errc::truncated), "truncated");
    EXPECT_EQ(to_string(decode_errc::not_envelope), "not_envelope");
    EXPECT_EQ(to_string(decode_errc::unsupported_version), "unsupported_version");
    EXPECT_EQ(to_string(decode_errc::bad_frame_count), "bad_frame_count");
}

TEST(codec, header_size_out_parameter_allows_an_inline_body) {
    const auto bytes = unhex(std::string(vector_minimal) + "626f6479"); // + "body"
    header out;
    std::size_t header_size = 0;
    ASSERT_TRUE(decode_header(bytes.data(), bytes.size(), out, &header_size));
    EXPECT_EQ(header_size, vector_minimal.size() / 2);
    EXPECT_EQ(bytes.substr(header_size), "body");
    EXPECT_EQ(decode(bytes, out).code, decode_errc::trailing_bytes) << "strict without it";
}

// ---- reader rules: docs/wire-protocol.md §2, one golden vector of §4 each ---------------------

namespace {

// docs/wire-protocol.md §4, "Reader rules".
constexpr std::string_view vector_non_utf8 =
    "84000101c4100193f1a2b3c47d5e8f0123456789abcd04cf180abe7135f8cd1505a9626164fffe6e616d65";
constexpr std::string_view vector_longer_encodings =
    "de000500cc01d001c4100193f1a2b3c47d5e8f0123456789abcdcd0004cf180abe7135f8cd1506d200000003"
    "05d903616263";
constexpr std::string_view vector_longer_encodings_rewritten =
    "85000101c4100193f1a2b3c47d5e8f0123456789abcd04cf180abe7135f8cd1505a36162630603";
constexpr std::string_view vector_attempt_0 =
    "84000101c4100193f1a2b3c47d5e8f0123456789abcd04cf180abe7135f8cd150600";
constexpr std::string_view vector_user_header_order =
    "84000101c4100193f1a2b3c47d5e8f0123456789abcd04cf180abe7135f8cd150b82a162c40132a161c40131";
constexpr std::string_view vector_user_header_twice =
    "84000101c4100193f1a2b3c47d5e8f0123456789abcd04cf180abe7135f8cd150b82a161c40131a161c40132";
constexpr std::string_view vector_version_string =
    "8300a13101c4100193f1a2b3c47d5e8f0123456789abcd04cf180abe7135f8cd15";
constexpr std::string_view vector_version_0 =
    "83000001c4100193f1a2b3c47d5e8f0123456789abcd04cf180abe7135f8cd15";
constexpr std::string_view vector_nil_id =
    "83000101c4100000000000000000000000000000000004cf180abe7135f8cd15";

// The minimal header plus unknown key 99 holding `arrays` fixarrays inside one another.
std::string nested_vector(std::size_t arrays) {
    std::string hex = "84" + std::string(vector_minimal).substr(2) + "63";
    for (std::size_t i = 0; i < arrays; ++i) {
        hex += "91";
    }
    return hex + "c0";
}

} // namespace

TEST(codec_reader_rules, a_str_that_is_not_utf8_is_kept_byte_for_byte) {
    header out;
    const auto st = decode(unhex(vector_non_utf8), out);
    ASSERT_TRUE(st) << st.message();
    EXPECT_EQ(out.type, std::string("bad\xff\xfename", 9));
    EXPECT_FALSE(is_valid_utf8(out.type));
    EXPECT_EQ(to_hex(encode_header(out)), vector_non_utf8);
}

TEST(codec_reader_rules, longer_integer_and_length_encodings_are_accepted) {
    header out;
    const auto st = decode(unhex(vector_longer_encodings), out);
    ASSERT_TRUE(st) << st.message();
    header want = minimal_header();
    want.attempt = 3;
    want.type = "abc";
    EXPECT_EQ(out, want);
    EXPECT_EQ(to_hex(encode_header(out)), vector_longer_encodings_rewritten);
}

TEST(codec_reader_rules, unknown_values_nest_at_most_32_levels_counting_the_header_map) {
    header out;
    auto st = decode(unhex(nested_vector(31)), out);
    ASSERT_TRUE(st) << st.message();
    EXPECT_EQ(out.unknown.count, 1U); // kept to be passed on (rule 6), byte for byte
    out.unknown = {};
    EXPECT_EQ(out, minimal_header());
    st = decode(unhex(nested_vector(32)), out);
    EXPECT_EQ(st.code, decode_errc::bad_field);
    EXPECT_EQ(st.field, "unknown_key");
    EXPECT_EQ(st.message(), "header field 'unknown_key' must be a msgpack value (it is skipped), "
                            "got a value nested more than 32 levels deep (at byte 33)");
    // array16 and map16 count the same: [ {nil: 29 fixarrays} ] reaches level 32 exactly
    auto with_value = [](const std::string& value_hex) {
        return unhex("84" + std::string(vector_minimal).substr(2) + "63" + value_hex);
    };
    std::string arrays;
    for (int i = 0; i < 29; ++i) {
        arrays += "91";
    }
    st = decode(with_value("dc0001de0001c0" + arrays + "c0"), out);
    ASSERT_TRUE(st) << st.message();
    st = decode(with_value("dc0001de0001c091" + arrays + "c0"), out);
    EXPECT_EQ(st.field, "unknown_key") << "one more level";
    st = decode(unhex("84" + std::string(vector_minimal).substr(2) + "9191c0c0"), out);
    ASSERT_TRUE(st) << "an array as key, nested twice: " << st.message();
}

TEST(codec_reader_rules, attempt_0_is_a_bad_field_and_attempt_1_on_the_wire_is_the_default) {
    header out;
    auto st = decode(unhex(vector_attempt_0), out);
    EXPECT_EQ(st.code, decode_errc::bad_field);
    EXPECT_EQ(st.field, "attempt");
    EXPECT_EQ(st.message(),
              "header field 'attempt' must be an integer from 1 to 4294967295, got 0 (at byte 33)");
    std::string one(vector_attempt_0);
    one.back() = '1';
    st = decode(unhex(one), out);
    ASSERT_TRUE(st) << st.message();
    EXPECT_EQ(out, minimal_header());
    // the encoder never writes what the reader refuses: attempt 0 goes out as 1 (absent)
    header h = minimal_header();
    h.attempt = 0;
    EXPECT_EQ(to_hex(encode_header(h)), vector_minimal);
    EXPECT_EQ(encoded_size(h), vector_minimal.size() / 2);
}

TEST(codec_reader_rules, user_headers_keep_their_order_and_a_repeated_name_keeps_every_entry) {
    header out;
    ASSERT_TRUE(decode(unhex(vector_user_header_order), out));
    ASSERT_EQ(out.user_headers.size(), 2U);
    EXPECT_EQ(out.user_headers[0], (std::pair<std::string, std::string>("b", "2")));
    EXPECT_EQ(out.user_headers[1], (std::pair<std::string, std::string>("a", "1")));
    EXPECT_EQ(to_hex(encode_header(out)), vector_user_header_order) << "not sorted";
    ASSERT_TRUE(decode(unhex(vector_user_header_twice), out));
    ASSERT_EQ(out.user_headers.size(), 2U);
    ASSERT_NE(out.find_user_header("a"), nullptr);
    EXPECT_EQ(*out.find_user_header("a"), "1") << "the first entry is the value";
    EXPECT_EQ(to_hex(encode_header(out)), vector_user_header_twice);
}

TEST(codec_reader_rules, a_repeated_user_header_map_replaces_the_earlier_one) {
    // key 11 twice: {a: 1} then {b: 2}; the last occurrence of a key wins
    header out;
    const auto st = decode(
        unhex("85" + std::string(vector_minimal).substr(2) + "0b81a161c401310b81a162c40132"), out);
    ASSERT_TRUE(st) << st.message();
    ASSERT_EQ(out.user_headers.size(), 1U);
    EXPECT_EQ(out.user_headers[0], (std::pair<std::string, std::string>("b", "2")));
}

TEST(codec_reader_rules, errors_say_what_is_wrong) {
    header out;
    auto st = decode(unhex(vector_version_string), out);
    EXPECT_EQ(st.code, decode_errc::bad_field);
    EXPECT_EQ(st.field, "version");
    EXPECT_EQ(st.message(),
              "header field 'version' must be a positive integer, got a string (at byte 2)");
    st = decode(unhex(vector_version_0), out);
    EXPECT_EQ(st.code, decode_errc::bad_field);
    EXPECT_EQ(st.message(), "header field 'version' must be a positive integer, got 0 (at byte 2)");
    st = decode(unhex(vector_nil_id), out);
    EXPECT_EQ(st.code, decode_errc::bad_field);
    EXPECT_EQ(st.field, "id");
    EXPECT_EQ(st.message(), "header field 'id' must be bin of 16 bytes, not all zero, got all "
                            "zeros (the sender did not set it) (at byte 4)");
    st = decode(unhex(vector_version_2), out);
    EXPECT_EQ(st.message(), "unsupported protocol version 2 (this build speaks 1): the sender "
                            "speaks a later major version; upgrade the receiver or downgrade "
                            "the sender");
    const std::string id = "c410" + std::string("0193f1a2b3c47d5e8f0123456789abcd");
    st = decode(unhex("830001" + std::string("01") + id + "04ff"), out);
    EXPECT_EQ(st.message(),
              "header field 'timestamp' must be an unsigned integer, got a negative integer (at "
              "byte 23)");
    st = decode(unhex("83000101c408" + std::string(16, '1') + "04cf180abe7135f8cd15"), out);
    EXPECT_EQ(st.message(), "header field 'id' must be bin of 16 bytes, not all zero, got bin of "
                            "another length (at byte 4)");
    st = decode("hello", out);
    EXPECT_EQ(st.message(), "not a zmqkit envelope: the frame is not a msgpack map (a header is a "
                            "msgpack map whose first key is 0, the protocol version)");
}

TEST(codec_reader_rules, the_vectors_here_are_the_ones_in_the_wire_protocol_document) {
    std::ifstream in(zmqkit::testing::source_dir() / "docs" / "wire-protocol.md");
    ASSERT_TRUE(in) << "cannot read docs/wire-protocol.md";
    std::string doc;
    for (char c = 0; in.get(c);) {
        if (c != '\n' && c != ' ') {
            doc += c; // hex blocks wrap lines and group bytes with spaces
        }
    }
    for (const auto v :
         {vector_minimal, vector_full, vector_publication, vector_publication_legacy,
          vector_unknown_keys, vector_version_2, vector_non_utf8, vector_longer_encodings,
          vector_longer_encodings_rewritten, vector_attempt_0, vector_user_header_order,
          vector_user_header_twice, vector_version_string, vector_version_0, vector_nil_id}) {
        EXPECT_NE(doc.find(v), std::string::npos) << v;
    }
}
