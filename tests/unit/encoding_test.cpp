// zmqkit/encoding.hpp: the one hex and base64 codec (round trips, odd lengths, invalid input).
#include <zmqkit/encoding.hpp>

#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <utility>

namespace {

std::string all_bytes() {
    std::string bytes;
    for (int i = 0; i < 256; ++i) {
        bytes += static_cast<char>(i);
    }
    return bytes;
}

TEST(encoding, hex_is_two_lower_case_digits_a_byte) {
    EXPECT_EQ(zmqkit::to_hex(""), "");
    EXPECT_EQ(zmqkit::to_hex(std::string("\xff\x01\x00\xab", 4)), "ff0100ab");
    std::string out = "id=";
    zmqkit::append_hex(out, "\x0f");
    EXPECT_EQ(out, "id=0f");
    EXPECT_EQ(zmqkit::hex_digit(10), 'a');
    EXPECT_EQ(zmqkit::hex_digit(0x1f), 'f') << "only the low four bits count";
}

TEST(encoding, hex_round_trips_every_byte_in_either_case) {
    const std::string bytes = all_bytes();
    const std::string hex = zmqkit::to_hex(bytes);
    ASSERT_EQ(hex.size(), 512U);
    EXPECT_EQ(zmqkit::from_hex(hex), bytes);
    std::string upper = hex;
    for (char& c : upper) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    EXPECT_EQ(zmqkit::from_hex(upper), bytes);
}

TEST(encoding, hex_refuses_odd_lengths_and_non_digits) {
    EXPECT_FALSE(zmqkit::from_hex("abc"));
    EXPECT_FALSE(zmqkit::from_hex("0g"));
    EXPECT_FALSE(zmqkit::from_hex("0x12"));
    EXPECT_FALSE(zmqkit::from_hex("12 "));
    EXPECT_EQ(zmqkit::from_hex(""), "");
    EXPECT_EQ(zmqkit::hex_value('F'), 15);
    EXPECT_EQ(zmqkit::hex_value('g'), -1);
}

TEST(encoding, base64_matches_the_rfc_4648_vectors) {
    // RFC 4648 §10.
    const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                           {"f", "Zg=="},
                                                           {"fo", "Zm8="},
                                                           {"foo", "Zm9v"},
                                                           {"foob", "Zm9vYg=="},
                                                           {"fooba", "Zm9vYmE="},
                                                           {"foobar", "Zm9vYmFy"}};
    for (const auto& [plain, encoded] : vectors) {
        EXPECT_EQ(zmqkit::base64_encode(plain), encoded) << plain;
        EXPECT_EQ(zmqkit::base64_decode(encoded), plain) << encoded;
    }
}

TEST(encoding, base64_round_trips_every_length_mod_three) {
    const std::string bytes = all_bytes();
    for (std::size_t n = 0; n <= 10; ++n) {
        const std::string part = bytes.substr(250 - n, n); // high bytes: sign bugs show
        EXPECT_EQ(zmqkit::base64_decode(zmqkit::base64_encode(part)), part) << n;
    }
    EXPECT_EQ(zmqkit::base64_decode(zmqkit::base64_encode(bytes)), bytes);
}

TEST(encoding, base64_decodes_without_padding) {
    EXPECT_EQ(zmqkit::base64_decode("Zg"), "f");
    EXPECT_EQ(zmqkit::base64_decode("Zm8"), "fo");
}

TEST(encoding, base64_refuses_what_is_not_base64) {
    EXPECT_FALSE(zmqkit::base64_decode("Zm9v!"));    // outside the alphabet
    EXPECT_FALSE(zmqkit::base64_decode("Zm-v"));     // base64url is another alphabet
    EXPECT_FALSE(zmqkit::base64_decode("Zm9 v"));    // whitespace
    EXPECT_FALSE(zmqkit::base64_decode("Zg==Zg==")); // data after the padding
    EXPECT_FALSE(zmqkit::base64_decode("Zg="));      // padding that does not fill a quantum
    EXPECT_FALSE(zmqkit::base64_decode("Z==="));     // three padding characters
    EXPECT_FALSE(zmqkit::base64_decode("Zm9vY"));    // one character left over
}

} // namespace
