#include "server/transport_security.h"

#include <arpa/inet.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace segrel::server {
namespace {

// Checks that `path` (given as option `flag`) can be read and holds a PEM block whose label ends with `label`.
absl::Status CheckPem(const std::string& flag, const std::string& path, const std::string& label) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--", flag, ": cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  if (!absl::StrContains(text.str(), label + "-----")) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", path, " holds no PEM ", label));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(const TlsOptions& tls) {
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  if (!tls.enabled()) {
    if (!tls.client_ca_file.empty())
      return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
    return grpc::InsecureServerCredentials();
  }
  if (tls.refresh < absl::Seconds(1)) return absl::InvalidArgumentError("--tls-refresh must be one second or more");
  if (absl::Status status = CheckPem("tls-cert", tls.cert_file, "CERTIFICATE"); !status.ok()) return status;
  if (absl::Status status = CheckPem("tls-key", tls.key_file, "PRIVATE KEY"); !status.ok()) return status;
  const bool mutual = !tls.client_ca_file.empty();
  if (mutual) {
    if (absl::Status status = CheckPem("tls-client-ca", tls.client_ca_file, "CERTIFICATE"); !status.ok()) return status;
  }
  const auto refresh = static_cast<unsigned int>(absl::ToInt64Seconds(tls.refresh));
  auto provider = mutual ? std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
                               tls.key_file, tls.cert_file, tls.client_ca_file, refresh)
                         : std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(tls.key_file,
                                                                                                tls.cert_file, refresh);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (mutual) {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

bool IsLoopback(const std::string& address) {
  const size_t colon = address.rfind(':');
  const std::string host = colon == std::string::npos ? address : address.substr(0, colon);
  in_addr ipv4{};
  if (inet_pton(AF_INET, host.c_str(), &ipv4) == 1) return (ntohl(ipv4.s_addr) >> 24) == 127;  // 127.0.0.0/8
  return host == "[::1]" || host == "localhost";
}

}  // namespace segrel::server
