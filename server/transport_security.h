// Transport security of the gRPC port: TLS with the server's certificate, optionally mutual TLS (clients present a
// certificate signed by a given CA), the files re-read while the server runs so a rotated Kubernetes secret needs no
// restart (gRPC's file-watcher certificate provider); plaintext only when no certificate is given.
#ifndef SEGREL_SERVER_TRANSPORT_SECURITY_H_
#define SEGREL_SERVER_TRANSPORT_SECURITY_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace segrel::server {

struct TlsOptions {
  std::string cert_file;       // PEM certificate chain of the server; empty: plaintext
  std::string key_file;        // PEM private key of the server
  std::string client_ca_file;  // PEM CA certificates: when set, clients must present a certificate they sign (mTLS)
  absl::Duration refresh = absl::Minutes(1);  // how often the files are read again
  bool enabled() const { return !cert_file.empty(); }
};

// The credentials `tls` describes. Errors: InvalidArgument naming the option (--tls-cert, --tls-key,
// --tls-client-ca) for a key without certificate or the other way round, a client CA without a certificate, a file
// that cannot be read or holds no PEM block of the right kind, a refresh under one second.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(const TlsOptions& tls);

// Whether HOST:PORT `address` listens on loopback only (127.0.0.0/8, [::1], localhost).
bool IsLoopback(const std::string& address);

}  // namespace segrel::server

#endif  // SEGREL_SERVER_TRANSPORT_SECURITY_H_
