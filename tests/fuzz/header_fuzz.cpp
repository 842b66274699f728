// libFuzzer target for the envelope decoder: the header frame alone, and whole multipart
// messages as they come off a socket. Properties: never crashes, never reads out of bounds
// (ASan), whatever decodes re-encodes to bytes that decode to the same header, and decoding
// into a header reused from the previous input (as receivers do: user-header entries and
// strings are overwritten in place) gives the same result as decoding into a fresh one.
#include <zmqkit/codec.hpp>
#include <zmqkit/socket.hpp>

#include <cstdint>
#include <cstdlib>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    const std::uint8_t mode = data[0];
    ++data;
    --size;
    zmqkit::header h;
    if ((mode & 1U) == 0) {
        const auto st = zmqkit::decode_header(data, size, h);
        static zmqkit::header reused; // holds whatever the previous input left in it
        const auto st_reused = zmqkit::decode_header(data, size, reused);
        if (st.code != st_reused.code || st.field != st_reused.field ||
            st.value != st_reused.value || st.detail != st_reused.detail ||
            (st.ok() && !(reused == h))) {
            std::abort(); // a reused header must decode exactly as a fresh one
        }
        if (st.ok()) {
            const auto bytes = zmqkit::encode_header(h);
            zmqkit::header again;
            if (!zmqkit::decode_header(bytes.data(), bytes.size(), again).ok() || !(again == h)) {
                std::abort(); // a decoded header must survive a re-encode
            }
        } else {
            (void)st.message();
        }
        return 0;
    }
    // Multipart: the input is split into frames at every 0xFF 0xFE marker.
    std::vector<zmq::message_t> frames;
    std::size_t start = 0;
    for (std::size_t i = 0; i + 1 < size; ++i) {
        if (data[i] == 0xFF && data[i + 1] == 0xFE) {
            frames.emplace_back(data + start, i - start);
            start = i + 2;
            ++i;
        }
    }
    frames.emplace_back(data + start, size - start);
    zmqkit::message out;
    std::string topic;
    const auto layout =
        (mode & 2U) != 0 ? zmqkit::frame_layout::topic : zmqkit::frame_layout::plain;
    const auto st = zmqkit::decode_frames(frames, frames.size(), layout, out, &topic);
    (void)st.message();
    return 0;
}
