// Security over real sockets (tcp on 127.0.0.1 with ephemeral ports, ipc, inproc): certificate
// files in CZMQ's zcert format, CURVE / PLAIN / NULL+IP round trips through the ZAP
// authenticator, the denied cases (nothing gets in, checked after an allowed peer got through;
// the server keeps serving; the denial is logged and counted; no secret in any log line), the
// handshake monitor's readable failures, reload(), and zmqkit::socket's security option.
#include <zmqkit/log.hpp>
#include <zmqkit/security.hpp>
#include <zmqkit/socket.hpp>

#include "support/testing.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <mutex>
#include <sys/stat.h>

using namespace zmqkit;
using namespace zmqkit::testing;

namespace {

// The zmq_curve(7) example pair, also in tests/data/zcert/alice (written in CZMQ's format).
constexpr const char* alice_public = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
constexpr const char* alice_secret = "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs";

std::filesystem::path fixture_dir() {
    return zmqkit::testing::source_dir() / "tests" / "data" / "zcert";
}

void write_text(const std::filesystem::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary);
    out << text;
}

unsigned mode_of(const std::filesystem::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 0777U;
}

// Lines written by the authenticator and the handshake monitors, thread-safe.
struct log_capture {
    std::mutex mutex;
    std::vector<std::string> lines;

    std::function<void(std::string_view)> sink() {
        return [this](std::string_view line) {
            std::lock_guard lock(mutex);
            lines.emplace_back(line);
        };
    }
    std::vector<std::string> snapshot() {
        std::lock_guard lock(mutex);
        return lines;
    }
    bool contains(const std::string& text) {
        for (const auto& l : snapshot()) {
            if (l.find(text) != std::string::npos) {
                return true;
            }
        }
        return false;
    }
    bool wait_for(const std::string& text, std::chrono::milliseconds timeout = 5s) {
        return eventually([&] { return contains(text); }, timeout);
    }
    std::string dump() {
        std::string out;
        for (const auto& l : snapshot()) {
            out += l + "\n";
        }
        return out;
    }
};

std::optional<std::string> recv_text(zmq::socket_t& s, std::chrono::milliseconds timeout) {
    auto m = recv_within(s, timeout);
    if (!m) {
        return std::nullopt;
    }
    return m->to_string();
}

struct security_fixture : ::testing::Test {
    zmq::context_t ctx;
    metrics_registry registry;
    log_capture logs;
    temp_directory dir{"security"};
    std::vector<std::string> secrets; // no log line may contain one of these

    void SetUp() override {
        if (!curve_available()) {
            GTEST_SKIP() << "libzmq without CURVE";
        }
        secrets.emplace_back(alice_secret);
    }

    void TearDown() override {
        for (const auto& line : logs.snapshot()) {
            for (const auto& s : secrets) {
                EXPECT_EQ(line.find(s), std::string::npos) << "a secret in a log line: " << line;
            }
        }
    }

    authenticator_options auth_options() {
        authenticator_options o;
        o.log = logs.sink();
        o.registry = &registry;
        return o;
    }

    certificate make_cert(const std::string& name) {
        auto c = certificate::generate();
        c.metadata.emplace_back("name", name);
        secrets.push_back(c.secret_key);
        return c;
    }

    zmq::socket_t raw(zmq::socket_type type) {
        zmq::socket_t s(ctx, type);
        s.set(zmq::sockopt::linger, 0);
        return s;
    }

    std::string bind_local(zmq::socket_t& s) {
        s.bind("tcp://127.0.0.1:*");
        return s.get(zmq::sockopt::last_endpoint);
    }

    std::uint64_t zap_count(const std::string& domain, const std::string& mechanism,
                            const std::string& result, const std::string& reason) {
        return registry
            .get_counter("zmqkit_zap_requests_total", "",
                         {{"domain", domain},
                          {"mechanism", mechanism},
                          {"result", result},
                          {"reason", reason}})
            .value();
    }
    std::uint64_t handshake_failures(const std::string& socket, const std::string& reason) {
        return registry
            .get_counter("zmqkit_security_handshake_failures_total", "",
                         {{"socket", socket}, {"reason", reason}})
            .value();
    }

    // A server-side line "frontend: handshake with [<ip:port> on ]<endpoint> failed: <reason>":
    // the endpoint always, the peer when the monitor saw the connection before it closed.
    bool server_line_names(const std::string& endpoint, const std::string& reason) {
        return eventually([&] {
            for (const auto& l : logs.snapshot()) {
                if (l.rfind("frontend: handshake with ", 0) == 0 &&
                    l.find(endpoint + " " + reason) != std::string::npos) {
                    return true;
                }
            }
            return false;
        });
    }

    // The denied-peer check: the denial happened (counted), an allowed peer's message got
    // through, then nothing else arrives (100 ms), and the server still serves the allowed peer.
    void expect_only_allowed_gets_in(zmq::socket_t& server, zmq::socket_t& allowed,
                                     const std::function<bool()>& denied_seen) {
        ASSERT_TRUE(eventually(denied_seen, 10s)) << "the denial was not seen\n" << logs.dump();
        allowed.send(zmq::buffer(std::string("from-allowed")));
        auto got = recv_text(server, 5s);
        ASSERT_TRUE(got.has_value()) << "the allowed peer's message did not arrive\n"
                                     << logs.dump();
        EXPECT_EQ(*got, "from-allowed");
        EXPECT_FALSE(recv_text(server, 100ms).has_value()) << "a denied peer got a message in";
        allowed.send(zmq::buffer(std::string("still-serving")));
        got = recv_text(server, 5s);
        ASSERT_TRUE(got.has_value());
        EXPECT_EQ(*got, "still-serving");
    }
};

} // namespace

// ---- certificates -------------------------------------------------------------------------

TEST_F(security_fixture, z85_keys_are_checked) {
    EXPECT_TRUE(is_z85_key(alice_public));
    EXPECT_TRUE(is_z85_key(alice_secret));
    EXPECT_FALSE(is_z85_key(""));
    EXPECT_FALSE(is_z85_key(std::string(alice_public).substr(1)));
    EXPECT_FALSE(is_z85_key(std::string(39, 'a') + "~")); // '~' is not Z85
    EXPECT_FALSE(is_z85_key(std::string(39, 'a') + "\""));
}

TEST_F(security_fixture, generate_save_load_round_trip_with_permissions) {
    auto c = make_cert("bob");
    c.metadata.emplace_back("email", "bob@example.com");
    c.metadata.emplace_back("quote", "it's \"quoted\"'s"); // both quotes: refused below
    const auto file = dir.path() / "bob";
    EXPECT_THROW(c.save(file), security_error);
    EXPECT_FALSE(std::filesystem::exists(file)) << "a refused save writes nothing";
    EXPECT_FALSE(std::filesystem::exists(dir.path() / "bob_secret"));
    c.metadata.back().second = "say \"hi\"";
    c.save(file);

    EXPECT_EQ(mode_of(dir.path() / "bob_secret"), 0600U);
    EXPECT_EQ(mode_of(file), 0644U);

    const auto pub = certificate::load(file);
    EXPECT_EQ(pub.public_key, c.public_key);
    EXPECT_TRUE(pub.secret_key.empty());
    EXPECT_EQ(pub.metadata, c.metadata);
    EXPECT_EQ(pub.meta("name"), "bob");
    EXPECT_EQ(pub.meta("missing"), "");

    const auto sec = certificate::load(dir.path() / "bob_secret");
    EXPECT_EQ(sec.public_key, c.public_key);
    EXPECT_EQ(sec.secret_key, c.secret_key);
    EXPECT_EQ(sec.metadata, c.metadata);

    std::ifstream in(dir.path() / "bob_secret");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find("ZeroMQ CURVE **Secret** Certificate"), std::string::npos);
    EXPECT_NE(text.find("DO NOT PROVIDE THIS FILE TO OTHER USERS"), std::string::npos);
    std::ifstream pin(file);
    const std::string ptext((std::istreambuf_iterator<char>(pin)),
                            std::istreambuf_iterator<char>());
    EXPECT_NE(ptext.find("ZeroMQ CURVE Public Certificate"), std::string::npos);
    EXPECT_EQ(ptext.find(c.secret_key), std::string::npos);
    EXPECT_NE(ptext.find("\nmetadata\n    name = \"bob\"\n"), std::string::npos);
    EXPECT_NE(ptext.find("\ncurve\n    public-key = \"" + c.public_key + "\"\n"),
              std::string::npos);
}

TEST_F(security_fixture, refuses_to_overwrite_unless_asked) {
    auto c = make_cert("carol");
    const auto file = dir.path() / "carol";
    c.save(file);
    auto d = make_cert("carol2");
    try {
        d.save(file);
        FAIL() << "overwrote an existing certificate";
    } catch (const security_error& e) {
        EXPECT_NE(std::string(e.what()).find("carol"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("already exists"), std::string::npos) << e.what();
    }
    // Only the secret file exists: still refused, and the public one is not written.
    std::filesystem::remove(file);
    EXPECT_THROW(d.save(file), security_error);
    EXPECT_FALSE(std::filesystem::exists(file));
    EXPECT_EQ(certificate::load(dir.path() / "carol_secret").public_key, c.public_key);

    d.save(file, true);
    EXPECT_EQ(certificate::load(file).public_key, d.public_key);
    EXPECT_EQ(certificate::load(dir.path() / "carol_secret").secret_key, d.secret_key);
    EXPECT_EQ(mode_of(dir.path() / "carol_secret"), 0600U);

    EXPECT_THROW(d.save_public(file), security_error);
    d.save_public(file, true);
    certificate no_secret;
    no_secret.public_key = d.public_key;
    EXPECT_THROW(no_secret.save(dir.path() / "nosecret"), security_error);
    for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
        EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos)
            << "temporary file left behind: " << entry.path();
    }
}

TEST_F(security_fixture, czmq_fixture_loads) {
    const auto pub = certificate::load(fixture_dir() / "alice");
    EXPECT_EQ(pub.public_key, alice_public);
    EXPECT_TRUE(pub.secret_key.empty());
    ASSERT_EQ(pub.metadata.size(), 2U);
    EXPECT_EQ(pub.meta("name"), "alice");
    EXPECT_EQ(pub.meta("email"), "alice@example.com");
    const auto sec = certificate::load(fixture_dir() / "alice_secret");
    EXPECT_EQ(sec.public_key, alice_public);
    EXPECT_EQ(sec.secret_key, alice_secret);
    EXPECT_EQ(resolve_public_key((fixture_dir() / "alice").string()), alice_public);
    EXPECT_EQ(resolve_public_key(alice_public), alice_public);
    EXPECT_THROW((void)resolve_public_key("no-such-file-or-key"), security_error);
}

TEST_F(security_fixture, accepts_what_czmq_and_hand_editing_produce) {
    const std::string pub(alice_public);
    const std::string sec(alice_secret);
    const std::vector<std::pair<std::string, std::string>> variants = {
        {"crlf", "#   comment\r\n\r\nmetadata\r\n    name = \"alice\"\r\ncurve\r\n"
                 "    public-key = \"" +
                     pub + "\"\r\n"},
        {"unquoted", "metadata\n    name = alice\ncurve\n    public-key = " + pub + "\n"},
        {"single quotes",
         "curve\n    public-key = '" + pub + "'\n    secret-key = '" + sec + "'\n"},
        {"empty metadata", "metadata\ncurve\n    public-key = \"" + pub + "\"\n"},
        {"comments and blanks",
         "# a\n\n   \nmetadata   # the metadata\n    # indented comment\n    name = \"a b\"  # c\n"
         "\ncurve\n    public-key = \"" +
             pub + "\"   \n\n"},
        {"no final newline", "curve\n    public-key = \"" + pub + "\""},
        {"unknown section",
         "extra\n    thing = 1\n        deeper = 2\ncurve\n    public-key = \"" + pub + "\"\n"},
        {"cr only", "metadata\r    name = \"x\"\rcurve\r    public-key = \"" + pub + "\"\r"},
    };
    for (const auto& [what, text] : variants) {
        try {
            const auto c = certificate::parse(text, what);
            EXPECT_EQ(c.public_key, pub) << what;
        } catch (const security_error& e) {
            ADD_FAILURE() << what << ": " << e.what();
        }
    }
    EXPECT_EQ(certificate::parse(variants[4].second, "x").meta("name"), "a b");
    EXPECT_EQ(certificate::parse(variants[2].second, "x").secret_key, sec);
}

TEST_F(security_fixture, malformed_files_give_clear_errors) {
    const std::string pub(alice_public);
    const std::string sec(alice_secret);
    const auto other = make_cert("other");
    struct bad_case {
        std::string file;
        std::string text;
        std::string expected; // in what()
    };
    const std::vector<bad_case> cases = {
        {"empty", "", "empty file"},
        {"missing-key", "metadata\n    name = \"x\"\ncurve\n", "no curve/public-key"},
        {"bad-z85", "curve\n    public-key = \"" + std::string(39, 'a') + "~\"\n",
         ":2: curve/public-key is not a 40-character Z85 key"},
        {"short-key", "curve\n    public-key = \"abc\"\n", ":2: curve/public-key is not"},
        {"bad-secret", "curve\n    public-key = \"" + pub + "\"\n    secret-key = \"short\"\n",
         ":3: curve/secret-key is not a 40-character Z85 key"},
        {"mismatch",
         "curve\n    public-key = \"" + other.public_key + "\"\n    secret-key = \"" + sec + "\"\n",
         "does not belong to the public key"},
        {"indent-2", "curve\n  public-key = \"" + pub + "\"\n",
         ":2: indentation of 2 spaces is not a multiple of 4"},
        {"indent-deep", "curve\n        public-key = \"" + pub + "\"\n", ":2: indented deeper"},
        {"tab", "curve\n\tpublic-key = \"" + pub + "\"\n", ":2: tab in the indentation"},
        {"binary",
         std::string("\x7f"
                     "ELF\x02\x01\x01\0\0\0",
                     10),
         ":1: control byte"},
        {"garbage", "curve\n    public-key ? \"" + pub + "\"\n", ":2: expected '='"},
        {"unclosed", "curve\n    public-key = \"" + pub + "\n",
         ":2: the value of 'public-key' has no closing"},
        {"trailing", "curve\n    public-key = \"" + pub + "\" extra\n", ":2: unexpected text"},
        {"only-comments", "# nothing\n\n", "no properties"},
        {"duplicate", "curve\n    public-key = \"" + pub + "\"\n    public-key = \"" + pub + "\"\n",
         ":3: a second curve/public-key"},
        {"bad-name", "cur%ve\n", ":1: expected '=' after 'cur'"},
    };
    for (const auto& c : cases) {
        const auto path = dir.path() / c.file;
        write_text(path, c.text);
        try {
            (void)certificate::load(path);
            ADD_FAILURE() << c.file << " loaded";
        } catch (const security_error& e) {
            const std::string what = e.what();
            EXPECT_NE(what.find(path.string()), std::string::npos) << c.file << ": " << what;
            EXPECT_NE(what.find(c.expected), std::string::npos) << c.file << ": " << what;
            EXPECT_EQ(what.find(sec), std::string::npos) << "the secret key in an error: " << what;
        }
    }
    try {
        (void)certificate::load(dir.path() / "does-not-exist");
        ADD_FAILURE() << "loaded a missing file";
    } catch (const security_error& e) {
        EXPECT_NE(std::string(e.what()).find("does-not-exist: cannot read"), std::string::npos)
            << e.what();
    }
}

TEST_F(security_fixture, certificate_directory_skips_bad_files_secrets_and_hidden_files) {
    const auto d = dir.path() / "allow";
    std::filesystem::create_directory(d);
    auto a = make_cert("a");
    auto b = make_cert("b");
    a.save(d / "a"); // a and a_secret
    b.save_public(d / "b");
    write_text(d / "broken", "curve\n  public-key = \"x\"\n");
    write_text(d / ".hidden", "garbage");
    std::filesystem::create_directory(d / "subdir");
    std::vector<std::string> problems;
    const auto certs = load_certificate_directory(d, &problems);
    ASSERT_EQ(certs.size(), 2U);
    EXPECT_EQ(certs[0].public_key, a.public_key);
    EXPECT_TRUE(certs[0].secret_key.empty());
    EXPECT_EQ(certs[1].meta("name"), "b");
    ASSERT_EQ(problems.size(), 1U);
    EXPECT_NE(problems[0].find((d / "broken").string()), std::string::npos) << problems[0];
    EXPECT_THROW((void)load_certificate_directory(dir.path() / "missing"), security_error);
}

// ---- socket_security ----------------------------------------------------------------------

TEST_F(security_fixture, settings_validate_and_describe_without_secrets) {
    const auto server_cert = make_cert("server");
    auto server = socket_security::curve_server(server_cert, "frontend");
    EXPECT_NO_THROW(server.validate());
    EXPECT_TRUE(server.enabled());
    const auto text = server.describe();
    EXPECT_NE(text.find("curve server"), std::string::npos) << text;
    EXPECT_NE(text.find(server_cert.public_key), std::string::npos) << text;
    EXPECT_NE(text.find("frontend"), std::string::npos) << text;
    EXPECT_EQ(text.find(server_cert.secret_key), std::string::npos) << text;

    auto no_domain = socket_security::curve_server(server_cert, "");
    EXPECT_THROW(no_domain.validate(), security_error);
    auto no_secret = server;
    no_secret.secret_key.clear();
    EXPECT_THROW(no_secret.validate(), security_error);
    auto wrong_pair = server;
    wrong_pair.public_key = alice_public;
    EXPECT_THROW(wrong_pair.validate(), security_error);

    auto client = socket_security::curve_client(server_cert.public_key);
    EXPECT_NO_THROW(client.validate());
    EXPECT_NE(client.describe().find("ephemeral"), std::string::npos);
    EXPECT_THROW(socket_security::curve_client("not a key").validate(), security_error);
    EXPECT_THROW(socket_security::curve_client("").validate(), security_error);
    const auto own = make_cert("client");
    const auto with_own = socket_security::curve_client(server_cert.public_key, &own);
    EXPECT_NO_THROW(with_own.validate());
    EXPECT_EQ(with_own.describe().find(own.secret_key), std::string::npos);

    const auto plain = socket_security::plain_client("user", "hunter2");
    EXPECT_NO_THROW(plain.validate());
    EXPECT_EQ(plain.describe().find("hunter2"), std::string::npos) << plain.describe();
    EXPECT_THROW(socket_security::plain_client("", "x").validate(), security_error);
    EXPECT_THROW(socket_security::plain_server("").validate(), security_error);
    EXPECT_NO_THROW(socket_security::null_server("ips").validate());
    EXPECT_TRUE(socket_security::null_server("ips").enabled());
    EXPECT_FALSE(socket_security{}.enabled());
    EXPECT_NO_THROW(socket_security{}.validate());

    auto s = raw(zmq::socket_type::pull);
    EXPECT_THROW(apply_security(s, no_secret), security_error);
    apply_security(s, server);
    EXPECT_EQ(s.get(zmq::sockopt::mechanism), ZMQ_CURVE);
    EXPECT_EQ(s.get(zmq::sockopt::curve_server), 1);
    EXPECT_EQ(s.get(zmq::sockopt::zap_domain), "frontend");
}

// ---- round trips --------------------------------------------------------------------------

TEST_F(security_fixture, curve_round_trip_with_allow_directory) {
    authenticator auth(ctx, auth_options());
    const auto server_cert = make_cert("server");
    const auto client_cert = make_cert("client-1");
    const auto allow = dir.path() / "allow";
    std::filesystem::create_directory(allow);
    client_cert.save_public(allow / "client-1");
    zap_policy policy;
    policy.curve_allow_directory = allow;
    auth.set_policy("frontend", policy);

    auto server = raw(zmq::socket_type::pull);
    apply_security(server, socket_security::curve_server(server_cert, "frontend"));
    zmqkit::handshake_monitor server_monitor(ctx, server, "server", logs.sink(), &registry);
    const auto ep = bind_local(server);

    auto client = raw(zmq::socket_type::push);
    apply_security(client, socket_security::curve_client(server_cert.public_key, &client_cert));
    zmqkit::handshake_monitor client_monitor(ctx, client, "client", logs.sink(), &registry);
    client.connect(ep);
    std::string why;
    ASSERT_TRUE(client_monitor.wait_handshake(5s, &why)) << why;
    client.send(zmq::buffer(std::string("hello")));
    auto got = recv_within(server, 5s);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->to_string(), "hello");
    EXPECT_EQ(got->gets("User-Id"), std::string("client-1")); // the certificate's name
    EXPECT_EQ(auth.stats().allowed, 1U);
    EXPECT_EQ(auth.stats().denied, 0U);
    EXPECT_EQ(zap_count("frontend", "curve", "allowed", "key_allowed"), 1U);
    EXPECT_TRUE(eventually([&] { return server_monitor.stats().succeeded == 1; }));
    EXPECT_EQ(server_monitor.stats().failed, 0U);
}

TEST_F(security_fixture, curve_allow_any_gives_encryption_to_an_ephemeral_client_over_ipc) {
    authenticator auth(ctx, auth_options());
    const auto server_cert = make_cert("server");
    zap_policy policy;
    policy.curve_allow_any = true;
    auth.set_policy("enc", policy);

    auto server = raw(zmq::socket_type::pull);
    apply_security(server, socket_security::curve_server(server_cert, "enc"));
    const auto ep = ipc_endpoint("curve-any");
    server.bind(ep);
    auto client = raw(zmq::socket_type::push);
    apply_security(client, socket_security::curve_client(server_cert.public_key));
    client.connect(ep);
    client.send(zmq::buffer(std::string("secret-ish")));
    auto got = recv_within(server, 5s);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->to_string(), "secret-ish");
    EXPECT_EQ(zap_count("enc", "curve", "allowed", "any_key"), 1U);
}

TEST_F(security_fixture, plain_round_trip_with_password_file) {
    authenticator auth(ctx, auth_options());
    const auto passwords = dir.path() / "passwords";
    write_text(passwords, "# dev users\nadmin = s3cret\nguest=guest\nnot a line\n");
    zap_policy policy;
    policy.plain_password_file = passwords;
    auth.set_policy("dev", policy);
    EXPECT_TRUE(logs.contains("not 'username=password'")) << logs.dump();
    secrets.emplace_back("s3cret");

    auto server = raw(zmq::socket_type::pull);
    apply_security(server, socket_security::plain_server("dev"));
    const auto ep = bind_local(server);
    auto client = raw(zmq::socket_type::push);
    apply_security(client, socket_security::plain_client("admin", "s3cret"));
    client.connect(ep);
    client.send(zmq::buffer(std::string("plain")));
    auto got = recv_within(server, 5s);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->to_string(), "plain");
    EXPECT_EQ(got->gets("User-Id"), std::string("admin"));
}

TEST_F(security_fixture, null_mechanism_with_ip_allow_list) {
    authenticator auth(ctx, auth_options());
    zap_policy policy;
    policy.allow_ips = {"127.0.0.0/8"};
    auth.set_policy("ips", policy);

    auto server = raw(zmq::socket_type::pull);
    apply_security(server, socket_security::null_server("ips"));
    const auto ep = bind_local(server);
    auto client = raw(zmq::socket_type::push);
    client.connect(ep);
    client.send(zmq::buffer(std::string("null")));
    auto got = recv_within(server, 5s);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->to_string(), "null");
    EXPECT_EQ(zap_count("ips", "null", "allowed", "null"), 1U);
}

// ---- denied -------------------------------------------------------------------------------

TEST_F(security_fixture, unknown_client_key_is_denied_logged_and_counted) {
    authenticator auth(ctx, auth_options());
    const auto server_cert = make_cert("server");
    const auto known = make_cert("known");
    const auto stranger = make_cert("stranger");
    const auto allow = dir.path() / "allow";
    std::filesystem::create_directory(allow);
    known.save_public(allow / "known");
    zap_policy policy;
    policy.curve_allow_directory = allow;
    auth.set_policy("frontend", policy);

    auto server = raw(zmq::socket_type::pull);
    apply_security(server, socket_security::curve_server(server_cert, "frontend"));
    zmqkit::handshake_monitor server_monitor(ctx, server, "frontend", logs.sink(), &registry);
    const auto ep = bind_local(server);

    auto bad = raw(zmq::socket_type::push);
    apply_security(bad, socket_security::curve_client(server_cert.public_key, &stranger));
    zmqkit::handshake_monitor bad_monitor(ctx, bad, "stranger", logs.sink(), &registry);
    bad.connect(ep);
    (void)bad.send(zmq::buffer(std::string("from-stranger")), zmq::send_flags::dontwait);

    auto good = raw(zmq::socket_type::push);
    apply_security(good, socket_security::curve_client(server_cert.public_key, &known));
    good.connect(ep);

    expect_only_allowed_gets_in(server, good, [&] { return auth.stats().denied >= 1; });
    EXPECT_GE(zap_count("frontend", "curve", "denied", "key_not_allowed"), 1U);
    ASSERT_TRUE(logs.wait_for("ZAP denied 127.0.0.1 (CURVE, domain \"frontend\"): client public "
                              "key " +
                              stranger.public_key.substr(0, 8)))
        << logs.dump();
    EXPECT_TRUE(logs.contains("not in the allow list " + allow.string())) << logs.dump();
    // The client side learns why; the server side names the peer and counts it.
    std::string why;
    EXPECT_FALSE(bad_monitor.wait_handshake(5s, &why));
    EXPECT_NE(why.find("ZAP 400"), std::string::npos) << why;
    EXPECT_TRUE(server_line_names(ep, "failed: peer not allowed (ZAP 400)")) << logs.dump();
    EXPECT_GE(handshake_failures("frontend", "zap_denied"), 1U);
    EXPECT_GE(server_monitor.stats().failed, 1U);
    EXPECT_EQ(server_monitor.stats().last_failure, "peer not allowed (ZAP 400)");
}

TEST_F(security_fixture, wrong_server_key_is_refused_and_reported_on_both_sides) {
    authenticator auth(ctx, auth_options());
    const auto server_cert = make_cert("server");
    const auto impostor = make_cert("impostor"); // the client was given the wrong key
    zap_policy policy;
    policy.curve_allow_any = true;
    auth.set_policy("frontend", policy);

    auto server = raw(zmq::socket_type::pull);
    apply_security(server, socket_security::curve_server(server_cert, "frontend"));
    zmqkit::handshake_monitor server_monitor(ctx, server, "frontend", logs.sink(), &registry);
    const auto ep = bind_local(server);

    auto bad = raw(zmq::socket_type::push);
    apply_security(bad, socket_security::curve_client(impostor.public_key));
    zmqkit::handshake_monitor bad_monitor(ctx, bad, "client", logs.sink(), &registry);
    bad.connect(ep);
    (void)bad.send(zmq::buffer(std::string("to-wrong-server")), zmq::send_flags::dontwait);

    std::string why;
    const auto start = std::chrono::steady_clock::now();
    EXPECT_FALSE(bad_monitor.wait_handshake(2s, &why));
    EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);
    EXPECT_NE(why.find("wrong server key"), std::string::npos) << why;

    auto good = raw(zmq::socket_type::push);
    apply_security(good, socket_security::curve_client(server_cert.public_key));
    good.connect(ep);
    expect_only_allowed_gets_in(
        server, good, [&] { return handshake_failures("frontend", "cryptographic") >= 1; });
    EXPECT_TRUE(
        server_line_names(ep, "failed: CURVE handshake failed: wrong server key or corrupt data"))
        << logs.dump();
    EXPECT_TRUE(logs.contains("client: handshake with " + ep + " failed: the server closed"))
        << logs.dump();
}

TEST_F(security_fixture, plaintext_client_against_curve_server) {
    authenticator auth(ctx, auth_options());
    const auto server_cert = make_cert("server");
    zap_policy policy;
    policy.curve_allow_any = true;
    auth.set_policy("frontend", policy);

    auto server = raw(zmq::socket_type::pull);
    apply_security(server, socket_security::curve_server(server_cert, "frontend"));
    zmqkit::handshake_monitor server_monitor(ctx, server, "frontend", logs.sink(), &registry);
    const auto ep = bind_local(server);

    auto plaintext = raw(zmq::socket_type::push);
    zmqkit::handshake_monitor plain_monitor(ctx, plaintext, "plaintext", logs.sink(), &registry);
    plaintext.connect(ep);
    (void)plaintext.send(zmq::buffer(std::string("in-clear")), zmq::send_flags::dontwait);
    std::string why;
    EXPECT_FALSE(plain_monitor.wait_handshake(5s, &why));
    EXPECT_NE(why.find("different security mechanism"), std::string::npos) << why;

    auto good = raw(zmq::socket_type::push);
    apply_security(good, socket_security::curve_client(server_cert.public_key));
    good.connect(ep);
    expect_only_allowed_gets_in(
        server, good, [&] { return handshake_failures("frontend", "mechanism_mismatch") >= 1; });
    EXPECT_TRUE(server_line_names(ep, "failed: the peer uses a different security mechanism (e.g. "
                                      "plaintext against CURVE)"))
        << logs.dump();
}

TEST_F(security_fixture, denied_ip_gets_nothing_in) {
    authenticator auth(ctx, auth_options());
    zap_policy policy;
    policy.deny_ips = {"127.0.0.1"};
    auth.set_policy("ips", policy);

    auto server = raw(zmq::socket_type::pull);
    apply_security(server, socket_security::null_server("ips"));
    const auto ep = bind_local(server); // tcp://127.0.0.1:PORT
    const auto port = ep.substr(ep.rfind(':') + 1);

    auto bad = raw(zmq::socket_type::push);
    bad.connect(ep); // from 127.0.0.1: denied
    (void)bad.send(zmq::buffer(std::string("from-denied")), zmq::send_flags::dontwait);
    auto good = raw(zmq::socket_type::push);
    good.connect("tcp://127.0.0.2:0;127.0.0.1:" + port); // source address 127.0.0.2

    expect_only_allowed_gets_in(server, good, [&] { return auth.stats().denied >= 1; });
    EXPECT_GE(zap_count("ips", "null", "denied", "ip_denied"), 1U);
    EXPECT_TRUE(logs.contains("ZAP denied 127.0.0.1 (NULL, domain \"ips\"): address is on the deny "
                              "list (127.0.0.1)"))
        << logs.dump();
}

TEST_F(security_fixture, wrong_plain_password_is_denied) {
    authenticator auth(ctx, auth_options());
    const auto passwords = dir.path() / "passwords";
    write_text(passwords, "admin=right-password\n");
    secrets.emplace_back("right-password");
    secrets.emplace_back("wrong-password");
    zap_policy policy;
    policy.plain_password_file = passwords;
    auth.set_policy("dev", policy);

    auto server = raw(zmq::socket_type::pull);
    apply_security(server, socket_security::plain_server("dev"));
    const auto ep = bind_local(server);
    auto bad = raw(zmq::socket_type::push);
    apply_security(bad, socket_security::plain_client("admin", "wrong-password"));
    bad.connect(ep);
    (void)bad.send(zmq::buffer(std::string("wrong")), zmq::send_flags::dontwait);
    auto good = raw(zmq::socket_type::push);
    apply_security(good, socket_security::plain_client("admin", "right-password"));
    good.connect(ep);
    expect_only_allowed_gets_in(server, good, [&] { return auth.stats().denied >= 1; });
    EXPECT_GE(zap_count("dev", "plain", "denied", "bad_password"), 1U);
    EXPECT_TRUE(logs.contains("ZAP denied 127.0.0.1 (PLAIN, domain \"dev\"): user \"admin\": "
                              "wrong password"))
        << logs.dump();
}

TEST_F(security_fixture, unknown_domain_fails_closed) {
    authenticator auth(ctx, auth_options());
    const auto server_cert = make_cert("server");
    auto server = raw(zmq::socket_type::pull);
    apply_security(server, socket_security::curve_server(server_cert, "nobody-configured-this"));
    const auto ep = bind_local(server);
    auto client = raw(zmq::socket_type::push);
    apply_security(client, socket_security::curve_client(server_cert.public_key));
    client.connect(ep);
    (void)client.send(zmq::buffer(std::string("x")), zmq::send_flags::dontwait);
    ASSERT_TRUE(eventually([&] { return auth.stats().denied >= 1; }));
    EXPECT_FALSE(recv_within(server, 100ms).has_value());
    EXPECT_TRUE(logs.contains("no policy for this domain")) << logs.dump();
}

// ---- the ZAP handler spoken to directly (RFC 27): CIDR blocks, IPv6, malformed requests ----

TEST_F(security_fixture, zap_requests_by_hand_cover_ip_blocks_and_malformed_requests) {
    authenticator auth(ctx, auth_options());
    zap_policy policy;
    policy.allow_ips = {"10.0.0.0/8", "fd00::/8", "192.168.1.7"};
    policy.deny_ips = {"10.9.0.0/16", "fd00:dead::/32"};
    auth.set_policy("net", policy);
    EXPECT_THROW(auth.set_policy("bad", zap_policy{{"10.0.0.0/33"}, {}, false, {}, {}, {}}),
                 security_error);
    EXPECT_THROW(auth.set_policy("bad", zap_policy{{"not-an-ip"}, {}, false, {}, {}, {}}),
                 security_error);
    EXPECT_THROW(auth.set_policy("bad", zap_policy{{}, {}, false, {}, {"short"}, {}}),
                 security_error);
    EXPECT_THROW(auth.set_policy("bad", zap_policy{{}, {}, false, dir.path() / "none", {}, {}}),
                 security_error);

    auto req = raw(zmq::socket_type::req);
    req.connect("inproc://zeromq.zap.01");
    auto ask = [&](const std::vector<std::string>& frames) {
        for (std::size_t i = 0; i < frames.size(); ++i) {
            req.send(zmq::buffer(frames[i]),
                     i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
        }
        std::vector<std::string> reply;
        for (;;) {
            auto f = recv_within(req, 5s);
            if (!f) {
                ADD_FAILURE() << "no ZAP reply";
                return reply;
            }
            reply.push_back(f->to_string());
            if (!f->more()) {
                return reply;
            }
        }
    };
    auto status = [&](const std::string& address) {
        const auto r = ask({"1.0", "id-" + address, "net", address, "", "NULL"});
        EXPECT_EQ(r.size(), 6U);
        EXPECT_EQ(r.at(0), "1.0");
        EXPECT_EQ(r.at(1), "id-" + address);
        return r.at(2);
    };
    EXPECT_EQ(status("10.1.2.3"), "200");
    EXPECT_EQ(status("10.9.2.3"), "400"); // denied block inside the allowed one
    EXPECT_EQ(status("11.0.0.1"), "400"); // not allowed
    EXPECT_EQ(status("192.168.1.7"), "200");
    EXPECT_EQ(status("192.168.1.8"), "400");
    EXPECT_EQ(status("fd00::1"), "200");
    EXPECT_EQ(status("fd00:dead::1"), "400");
    EXPECT_EQ(status("fe80::1"), "400");
    EXPECT_EQ(status("::ffff:10.1.2.3"), "200"); // IPv4-mapped
    EXPECT_EQ(status(""), "400");                // no address with an allow list: fail closed

    const auto bad_version = ask({"2.0", "r1", "net", "10.1.1.1", "", "NULL"});
    EXPECT_EQ(bad_version.at(2), "500");
    const auto short_request = ask({"1.0", "r2"});
    EXPECT_EQ(short_request.at(2), "500");
    const auto bad_curve = ask({"1.0", "r3", "net", "10.1.1.1", "", "CURVE", "short"});
    EXPECT_EQ(bad_curve.at(2), "500");
    EXPECT_EQ(auth.stats().malformed, 3U);
    EXPECT_EQ(ask({"1.0", "r4", "net", "10.1.1.1", "", "GSSAPI"}).at(2), "400");
    EXPECT_EQ(ask({"1.0", "r5", "other", "10.1.1.1", "", "NULL"}).at(2), "400");
}

TEST_F(security_fixture, second_authenticator_on_a_context_is_refused) {
    authenticator first(ctx, auth_options());
    EXPECT_THROW(authenticator second(ctx, auth_options()), security_error);
    zmq::context_t other;
    authenticator on_other(other, auth_options()); // one per context
}

// ---- reload -------------------------------------------------------------------------------

TEST_F(security_fixture, reload_admits_added_keys_and_refuses_removed_ones) {
    authenticator auth(ctx, auth_options());
    const auto server_cert = make_cert("server");
    const auto early = make_cert("early");
    const auto late = make_cert("late");
    const auto allow = dir.path() / "allow";
    std::filesystem::create_directory(allow);
    early.save_public(allow / "early");
    zap_policy policy;
    policy.curve_allow_directory = allow;
    auth.set_policy("frontend", policy);

    auto server = raw(zmq::socket_type::pull);
    apply_security(server, socket_security::curve_server(server_cert, "frontend"));
    const auto ep = bind_local(server);

    auto late_client = [&] {
        auto s = raw(zmq::socket_type::push);
        apply_security(s, socket_security::curve_client(server_cert.public_key, &late));
        return s;
    };
    {
        auto c = late_client();
        c.connect(ep);
        (void)c.send(zmq::buffer(std::string("too-early")), zmq::send_flags::dontwait);
        ASSERT_TRUE(eventually([&] { return auth.stats().denied >= 1; }));
    }
    late.save_public(allow / "late");
    std::filesystem::remove(allow / "early");
    write_text(allow / "junk", "not a certificate");
    EXPECT_EQ(auth.reload(), 1U); // the junk file
    EXPECT_TRUE(logs.contains("junk")) << logs.dump();
    {
        auto c = late_client();
        c.connect(ep);
        c.send(zmq::buffer(std::string("after-reload")));
        auto got = recv_text(server, 5s);
        ASSERT_TRUE(got.has_value()) << logs.dump();
        EXPECT_EQ(*got, "after-reload");
    }
    const auto denied_before = auth.stats().denied;
    auto e = raw(zmq::socket_type::push);
    apply_security(e, socket_security::curve_client(server_cert.public_key, &early));
    e.connect(ep);
    (void)e.send(zmq::buffer(std::string("removed")), zmq::send_flags::dontwait);
    ASSERT_TRUE(eventually([&] { return auth.stats().denied > denied_before; }));
    EXPECT_FALSE(recv_text(server, 100ms).has_value());

    // An unreadable directory keeps the previous keys and is reported.
    std::filesystem::rename(allow, dir.path() / "moved");
    EXPECT_GE(auth.reload(), 1U);
    EXPECT_TRUE(logs.contains("keeps its previous keys")) << logs.dump();
    auto again = late_client();
    again.connect(ep);
    again.send(zmq::buffer(std::string("still-allowed")));
    auto got = recv_text(server, 5s);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, "still-allowed");
}

// ---- handshake_monitor --------------------------------------------------------------------

TEST_F(security_fixture, wait_handshake_says_server_down_when_nothing_listens) {
    auto probe = raw(zmq::socket_type::pull);
    const auto ep = bind_local(probe);
    probe.unbind(ep); // a port nothing listens on now (only used to get a refused connect)
    probe.close();
    auto client = raw(zmq::socket_type::push);
    apply_security(client, socket_security::curve_client(alice_public));
    zmqkit::handshake_monitor monitor(ctx, client, "client", logs.sink(), &registry);
    client.connect(ep);
    std::string why;
    EXPECT_FALSE(monitor.wait_handshake(300ms, &why));
    EXPECT_NE(why.find("server down or unreachable"), std::string::npos) << why;
}

// ---- zmqkit::socket -----------------------------------------------------------------------

TEST_F(security_fixture, zmqkit_socket_applies_security_and_monitors_handshakes_across_moves) {
    authenticator auth(ctx, auth_options());
    const auto server_cert = make_cert("server");
    zap_policy policy;
    policy.curve_allow_any = true;
    auth.set_policy("frontend", policy);

    socket_options server_opts;
    server_opts.name = "secure-pull";
    server_opts.registry = &registry;
    server_opts.security = socket_security::curve_server(server_cert, "frontend");
    zmqkit::socket first(ctx, zmq::socket_type::pull, server_opts);
    ASSERT_NE(first.handshakes(), nullptr);
    zmqkit::socket server(std::move(first)); // the monitor follows the libzmq socket
    const auto ep = server.attach("tcp://127.0.0.1:*", endpoint_action::bind).at(0);

    socket_options client_opts;
    client_opts.name = "secure-push";
    client_opts.registry = &registry;
    client_opts.security = socket_security::curve_client(server_cert.public_key);
    zmqkit::socket client(ctx, zmq::socket_type::push, client_opts);
    client.attach(ep, endpoint_action::connect);
    std::string why;
    ASSERT_TRUE(client.handshakes()->wait_handshake(5s, &why)) << why;
    ASSERT_TRUE(client.send(message{"sealed"}));
    auto got = server.recv(5s);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->body_view(), "sealed");
    // The server's monitor records the handshake on its own thread.
    EXPECT_TRUE(eventually([&] { return server.handshakes()->stats().succeeded == 1; }));

    // Move assignment over a secured socket: its monitor stops before its socket closes.
    zmqkit::socket replacement(ctx, zmq::socket_type::push, client_opts);
    replacement.attach(ep, endpoint_action::connect);
    client = std::move(replacement);
    ASSERT_TRUE(client.handshakes()->wait_handshake(5s, &why)) << why;
    ASSERT_TRUE(client.send(message{"again"}));
    got = server.recv(5s);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->body_view(), "again");

    socket_options plain_opts;
    plain_opts.registry = &registry;
    zmqkit::socket unsecured(ctx, zmq::socket_type::push, plain_opts);
    EXPECT_EQ(unsecured.handshakes(), nullptr);

    socket_options bad_opts = client_opts;
    bad_opts.security.server_key = "bad";
    EXPECT_THROW(zmqkit::socket(ctx, zmq::socket_type::push, bad_opts), security_error);
}

// Without a `log` callback the authenticator and the handshake monitor write to zmqkit's log:
// component "zmqkit.zap" for ZAP decisions, the socket's name for its handshake failures.
TEST_F(security_fixture, unset_logs_go_to_zmqkit_log_by_component) {
    struct record {
        std::string component;
        log_level level;
        std::string message;
    };
    std::mutex mutex;
    std::vector<record> records;
    set_log_sink(make_callback_sink([&](const log_record& r) {
        std::lock_guard lock(mutex);
        records.push_back({std::string(r.component), r.level, std::string(r.message)});
    }));
    struct restore {
        ~restore() { reset_log_configuration(); }
    } restore_defaults;
    auto seen = [&](const std::string& component, const std::string& prefix) {
        return eventually([&] {
            std::lock_guard lock(mutex);
            for (const auto& r : records) {
                if (r.component == component && r.level == log_level::warn &&
                    r.message.rfind(prefix, 0) == 0) {
                    return true;
                }
            }
            return false;
        });
    };

    authenticator_options options;
    options.registry = &registry; // no log: zmqkit's log
    authenticator auth(ctx, options);
    zap_policy deny;
    deny.deny_ips = {"127.0.0.1"};
    auth.set_policy("ips", deny);
    zap_policy any;
    any.curve_allow_any = true;
    auth.set_policy("frontend", any);

    auto filtered = raw(zmq::socket_type::pull);
    apply_security(filtered, socket_security::null_server("ips"));
    auto denied = raw(zmq::socket_type::push);
    denied.connect(bind_local(filtered));
    (void)denied.send(zmq::buffer(std::string("denied")), zmq::send_flags::dontwait);
    EXPECT_TRUE(seen("zmqkit.zap", "ZAP denied 127.0.0.1 (NULL, domain \"ips\")"));

    auto server = raw(zmq::socket_type::pull);
    apply_security(server, socket_security::curve_server(make_cert("server"), "frontend"));
    zmqkit::handshake_monitor monitor(ctx, server, "frontend", nullptr, &registry);
    auto plaintext = raw(zmq::socket_type::push);
    plaintext.connect(bind_local(server));
    (void)plaintext.send(zmq::buffer(std::string("in-clear")), zmq::send_flags::dontwait);
    EXPECT_TRUE(seen("frontend", "handshake with ")); // the socket's name, without the prefix
}
