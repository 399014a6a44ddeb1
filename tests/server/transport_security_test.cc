// What counts as loopback (the server warns about plaintext and open access beyond it), and the TLS options'
// mistakes named by option. The handshakes themselves are tested against the real binary (security_test.py).
#include "server/transport_security.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace segrel::server {
namespace {

using segrel::testing::StatusIs;

TEST(TransportSecurityTest, OnlyLoopbackAddressesAreLoopback) {
  EXPECT_TRUE(IsLoopback("127.0.0.1:50051"));
  EXPECT_TRUE(IsLoopback("127.3.2.1:0"));
  EXPECT_TRUE(IsLoopback("[::1]:50051"));
  EXPECT_TRUE(IsLoopback("localhost:50051"));
  EXPECT_FALSE(IsLoopback("0.0.0.0:50051"));
  EXPECT_FALSE(IsLoopback("[::]:50051"));
  EXPECT_FALSE(IsLoopback("10.0.0.7:50051"));
  EXPECT_FALSE(IsLoopback("127.example.org:50051"));
  EXPECT_FALSE(IsLoopback("segrel.hospital.org:50051"));
}

TEST(TransportSecurityTest, MistakesNameTheOption) {
  TlsOptions key_only;
  key_only.key_file = "/nonexistent.key";
  EXPECT_THAT(ServerCredentialsFor(key_only), StatusIs(absl::StatusCode::kInvalidArgument,
                                                       ::testing::HasSubstr("--tls-cert and --tls-key go together")));
  TlsOptions missing;
  missing.cert_file = "/nonexistent.pem";
  missing.key_file = "/nonexistent.key";
  EXPECT_THAT(ServerCredentialsFor(missing),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("--tls-cert: cannot read")));
  TlsOptions ca_only;
  ca_only.client_ca_file = "/nonexistent-ca.pem";
  EXPECT_THAT(ServerCredentialsFor(ca_only),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("--tls-client-ca needs --tls-cert")));
  EXPECT_TRUE(ServerCredentialsFor(TlsOptions{}).ok()) << "no files: plaintext";
}

}  // namespace
}  // namespace segrel::server
