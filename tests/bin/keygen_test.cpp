// zmqkit-keygen as a real process: writes a key pair (secret file 0600), prints only the public
// key, refuses to overwrite without --force (exit 73, naming the file), lists and inspects
// certificates (text and --json, never the secret key), rejects bad flags with exit 64, and a
// key it wrote carries a CURVE round trip through the authenticator.
#include "support/process.hpp"
#include "support/testing.hpp"

#include <zmqkit/security.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <mutex>
#include <sys/stat.h>

using namespace zmqkit;
using namespace zmqkit::testing;
using ::testing::HasSubstr;
using ::testing::Not;
using json = nlohmann::json;

namespace {

struct run_result {
    std::optional<int> code;
    std::string out;
    std::string err;
};

run_result keygen(std::vector<std::string> args) {
    args.insert(args.begin(), bin_path("zmqkit-keygen"));
    child_process p(std::move(args));
    run_result r;
    r.code = p.wait(30s);
    std::string out = p.read_stdout(20ms);
    for (;;) {
        const auto more = p.read_stdout(20ms);
        if (more.size() == out.size()) {
            break;
        }
        out = more;
    }
    r.out = out;
    while (p.next_stderr_line(50ms)) {
    }
    for (const auto& l : p.stderr_lines()) {
        r.err += l + "\n";
    }
    return r;
}

unsigned mode_of(const std::filesystem::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 0777U;
}

std::string strip(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) {
        s.pop_back();
    }
    return s;
}

json parse_json(const run_result& r) {
    try {
        return json::parse(r.out);
    } catch (const json::exception& e) {
        ADD_FAILURE() << "not JSON (" << e.what() << "):\n" << r.out << "\nstderr:\n" << r.err;
        return json::object();
    }
}

} // namespace

TEST(keygen, writes_a_key_pair_and_prints_only_the_public_key) {
    temp_directory dir("keygen");
    const auto path = dir.path() / "alice";
    const auto r = keygen({path.string(), "--meta", "email=alice@example.com"});
    ASSERT_EQ(r.code, 0) << r.err;
    const auto printed = strip(r.out);
    EXPECT_TRUE(is_z85_key(printed)) << r.out;
    EXPECT_EQ(r.out, printed + "\n") << "only the public key on stdout";

    EXPECT_EQ(mode_of(dir.path() / "alice_secret"), 0600U);
    EXPECT_EQ(mode_of(path), 0644U);
    const auto pub = certificate::load(path);
    const auto sec = certificate::load(dir.path() / "alice_secret");
    EXPECT_EQ(pub.public_key, printed);
    EXPECT_EQ(sec.public_key, printed);
    EXPECT_EQ(pub.meta("name"), "alice");
    EXPECT_EQ(pub.meta("email"), "alice@example.com");
    EXPECT_THAT(r.out + r.err, Not(HasSubstr(sec.secret_key)));
}

TEST(keygen, output_flag_and_name) {
    temp_directory dir("keygen");
    const auto path = dir.path() / "keys-server";
    const auto r = keygen({"generate", "--output", path.string(), "server", "--json"});
    ASSERT_EQ(r.code, 0) << r.err;
    const auto j = parse_json(r);
    EXPECT_EQ(j.value("public_file", ""), path.string());
    EXPECT_EQ(j.value("secret_file", ""), path.string() + "_secret");
    const auto pub = certificate::load(path);
    EXPECT_EQ(j.value("public_key", ""), pub.public_key);
    EXPECT_EQ(pub.meta("name"), "server");
}

TEST(keygen, refuses_to_overwrite_without_force) {
    temp_directory dir("keygen");
    const auto path = dir.path() / "bob";
    const auto first = keygen({path.string()});
    ASSERT_EQ(first.code, 0) << first.err;
    const auto before = certificate::load(dir.path() / "bob_secret");

    const auto again = keygen({path.string()});
    EXPECT_EQ(again.code, 73);
    EXPECT_THAT(again.err, HasSubstr(path.string()));
    EXPECT_THAT(again.err, HasSubstr("already exists"));
    EXPECT_EQ(again.out, "");
    EXPECT_EQ(certificate::load(dir.path() / "bob_secret").secret_key, before.secret_key);

    // The secret file alone also blocks.
    std::filesystem::remove(path);
    const auto secret_only = keygen({path.string()});
    EXPECT_EQ(secret_only.code, 73);
    EXPECT_THAT(secret_only.err, HasSubstr("bob_secret"));
    EXPECT_FALSE(std::filesystem::exists(path));

    const auto forced = keygen({path.string(), "--force"});
    ASSERT_EQ(forced.code, 0) << forced.err;
    const auto after = certificate::load(dir.path() / "bob_secret");
    EXPECT_NE(after.public_key, before.public_key);
    EXPECT_EQ(strip(forced.out), after.public_key);
    EXPECT_EQ(mode_of(dir.path() / "bob_secret"), 0600U);
}

TEST(keygen, inspect_never_prints_the_secret_key) {
    temp_directory dir("keygen");
    const auto path = dir.path() / "carol";
    ASSERT_EQ(keygen({path.string()}).code, 0);
    const auto sec = certificate::load(dir.path() / "carol_secret");

    const auto text = keygen({"inspect", (dir.path() / "carol_secret").string()});
    ASSERT_EQ(text.code, 0) << text.err;
    EXPECT_THAT(text.out, HasSubstr("secret key: present"));
    EXPECT_THAT(text.out, HasSubstr("public key: " + sec.public_key));
    EXPECT_THAT(text.out, HasSubstr("name = \"carol\""));
    EXPECT_THAT(text.out + text.err, Not(HasSubstr(sec.secret_key)));

    const auto j = keygen({"inspect", (dir.path() / "carol_secret").string(), "--json"});
    ASSERT_EQ(j.code, 0) << j.err;
    const auto doc = parse_json(j);
    EXPECT_EQ(doc.value("kind", ""), "secret");
    EXPECT_EQ(doc.value("secret_key", ""), "present");
    EXPECT_EQ(doc.value("public_key", ""), sec.public_key);
    EXPECT_EQ(doc["metadata"].value("name", ""), "carol");
    EXPECT_THAT(j.out, Not(HasSubstr(sec.secret_key)));

    const auto pub = keygen({"inspect", path.string()});
    ASSERT_EQ(pub.code, 0);
    EXPECT_THAT(pub.out, HasSubstr("secret key: absent"));

    {
        std::ofstream bad(dir.path() / "bad");
        bad << "curve\n  public-key = \"x\"\n";
    }
    const auto broken = keygen({"inspect", (dir.path() / "bad").string()});
    EXPECT_EQ(broken.code, 65);
    EXPECT_THAT(broken.err, HasSubstr((dir.path() / "bad").string() + ":2:"));
    const auto missing = keygen({"inspect", (dir.path() / "nope").string()});
    EXPECT_EQ(missing.code, 66);
    EXPECT_THAT(missing.err, HasSubstr("no such file"));
}

TEST(keygen, list_shows_certificates_and_problems) {
    temp_directory dir("keygen");
    ASSERT_EQ(keygen({(dir.path() / "a").string()}).code, 0);
    ASSERT_EQ(keygen({(dir.path() / "b").string(), "--meta", "role=backend"}).code, 0);
    {
        std::ofstream bad(dir.path() / "junk");
        bad << "not a certificate\n";
        std::ofstream hidden(dir.path() / ".hidden");
        hidden << "ignored\n";
    }
    const auto a = certificate::load(dir.path() / "a_secret");
    const auto text = keygen({"list", dir.path().string()});
    ASSERT_EQ(text.code, 0) << text.err;
    EXPECT_THAT(text.out, HasSubstr("a  " + a.public_key));
    EXPECT_THAT(text.out, HasSubstr("role=\"backend\""));
    EXPECT_THAT(text.out, HasSubstr("problem: " + (dir.path() / "junk").string()));
    EXPECT_THAT(text.out, Not(HasSubstr("a_secret  ")));
    EXPECT_THAT(text.out, Not(HasSubstr(".hidden")));
    EXPECT_THAT(text.out, Not(HasSubstr(a.secret_key)));

    const auto j = keygen({"list", dir.path().string(), "--json"});
    ASSERT_EQ(j.code, 0) << j.err;
    const auto doc = parse_json(j);
    ASSERT_EQ(doc["certificates"].size(), 2U);
    EXPECT_EQ(doc["certificates"][0].value("file", ""), "a");
    EXPECT_EQ(doc["certificates"][0].value("public_key", ""), a.public_key);
    EXPECT_TRUE(doc["certificates"][0].value("secret_file", false));
    EXPECT_EQ(doc["certificates"][1]["metadata"].value("role", ""), "backend");
    ASSERT_EQ(doc["problems"].size(), 1U);
    EXPECT_THAT(doc["problems"][0].get<std::string>(), HasSubstr("junk"));

    const auto missing = keygen({"list", (dir.path() / "none").string()});
    EXPECT_EQ(missing.code, 66);
}

TEST(keygen, json_output_stays_valid_with_names_and_metadata_that_are_not_utf8) {
    // File names and metadata are bytes: --json replaces invalid UTF-8 by U+FFFD instead of
    // failing (docs/operations.md, "STATUS documents": one rule for every JSON zmqkit writes).
    temp_directory dir("keygen");
    const auto path = dir.path() / std::string("odd\xff", 4);
    ASSERT_EQ(keygen({path.string(), "--meta", std::string("role=x\xfey", 8)}).code, 0);
    const auto list = keygen({"list", dir.path().string(), "--json"});
    ASSERT_EQ(list.code, 0) << list.err;
    const auto doc = parse_json(list);
    ASSERT_EQ(doc["certificates"].size(), 1U) << list.out;
    EXPECT_EQ(doc["certificates"][0].value("file", ""), "odd\xef\xbf\xbd");
    EXPECT_EQ(doc["certificates"][0]["metadata"].value("role", ""), "x\xef\xbf\xbdy");
    const auto one = keygen({"inspect", path.string(), "--json"});
    ASSERT_EQ(one.code, 0) << one.err;
    EXPECT_EQ(parse_json(one)["metadata"].value("role", ""), "x\xef\xbf\xbdy");
}

TEST(keygen, bad_usage_exits_64_with_a_clear_message) {
    const auto unknown = keygen({"--bogus"});
    EXPECT_EQ(unknown.code, 64);
    EXPECT_THAT(unknown.err, HasSubstr("ERROR zmqkit-keygen:"));
    EXPECT_THAT(unknown.err, HasSubstr("--bogus"));
    const auto none = keygen({});
    EXPECT_EQ(none.code, 64);
    EXPECT_THAT(none.err, HasSubstr("no certificate name given"));
    const auto bad_meta = keygen({"x", "--meta", "novalue"});
    EXPECT_EQ(bad_meta.code, 64);
    EXPECT_THAT(bad_meta.err, HasSubstr("--meta 'novalue' is not name=value"));
    const auto secret_name = keygen({"x_secret"});
    EXPECT_EQ(secret_name.code, 64);
    const auto list_without_dir = keygen({"list"});
    EXPECT_EQ(list_without_dir.code, 64);
    EXPECT_THAT(list_without_dir.err, HasSubstr("list needs a directory"));

    const auto help = keygen({"--help"});
    EXPECT_EQ(help.code, 0);
    EXPECT_THAT(help.out, HasSubstr("Examples:"));
    EXPECT_THAT(help.out, HasSubstr("zmqkit-keygen list"));
    const auto sub_help = keygen({"inspect", "--help"});
    EXPECT_EQ(sub_help.code, 0);
    EXPECT_THAT(sub_help.out, HasSubstr("--json"));
}

TEST(keygen, a_generated_key_carries_a_curve_round_trip) {
    if (!curve_available()) {
        GTEST_SKIP() << "libzmq without CURVE";
    }
    temp_directory dir("keygen");
    std::filesystem::create_directory(dir.path() / "allowed");
    ASSERT_EQ(keygen({(dir.path() / "server").string()}).code, 0);
    ASSERT_EQ(keygen({(dir.path() / "allowed" / "client").string()}).code, 0);
    // The allow directory holds the client's public file; its secret file lives elsewhere.
    std::filesystem::rename(dir.path() / "allowed" / "client_secret", dir.path() / "client_secret");

    zmq::context_t ctx;
    metrics_registry registry;
    std::vector<std::string> lines;
    std::mutex mutex;
    authenticator_options ao;
    ao.registry = &registry;
    ao.log = [&](std::string_view l) {
        std::lock_guard lock(mutex);
        lines.emplace_back(l);
    };
    authenticator auth(ctx, ao);
    zap_policy policy;
    policy.curve_allow_directory = dir.path() / "allowed";
    auth.set_policy("keygen", policy);

    const auto server_cert = certificate::load(dir.path() / "server_secret");
    const auto client_cert = certificate::load(dir.path() / "client_secret");
    zmq::socket_t server(ctx, zmq::socket_type::pull);
    server.set(zmq::sockopt::linger, 0);
    apply_security(server, socket_security::curve_server(server_cert, "keygen"));
    server.bind("tcp://127.0.0.1:*");
    const auto ep = server.get(zmq::sockopt::last_endpoint);

    zmq::socket_t client(ctx, zmq::socket_type::push);
    client.set(zmq::sockopt::linger, 0);
    apply_security(client, socket_security::curve_client(
                               resolve_public_key((dir.path() / "server").string()), &client_cert));
    client.connect(ep);
    client.send(zmq::buffer(std::string("keyed")));
    auto got = recv_within(server, 5s);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->to_string(), "keyed");
    EXPECT_EQ(std::string(got->gets("User-Id")), "client");
    EXPECT_EQ(auth.stats().allowed, 1U);
}
