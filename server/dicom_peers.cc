#include "server/dicom_peers.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace segrel::server {
namespace {

// The numeric addresses of `host` (IPv4 and IPv6), or an error.
absl::StatusOr<std::vector<std::string>> Resolve(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int error = getaddrinfo(host.c_str(), nullptr, &hints, &found); error != 0) {
    return absl::InvalidArgumentError(absl::StrCat("host '", host, "' does not resolve: ", gai_strerror(error)));
  }
  std::vector<std::string> addresses;
  for (const addrinfo* entry = found; entry != nullptr; entry = entry->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    if (getnameinfo(entry->ai_addr, entry->ai_addrlen, text, sizeof(text), nullptr, 0, NI_NUMERICHOST) == 0 &&
        std::find(addresses.begin(), addresses.end(), text) == addresses.end()) {
      addresses.emplace_back(text);
    }
  }
  freeaddrinfo(found);
  return addresses;
}

}  // namespace

bool IsValidAeTitle(absl::string_view ae_title) {
  if (ae_title.empty() || ae_title.size() > 16) return false;
  if (absl::StripAsciiWhitespace(ae_title).empty()) return false;
  return std::all_of(ae_title.begin(), ae_title.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte >= 0x20 && byte < 0x7f && c != '\\';
  });
}

absl::StatusOr<DicomPeers> DicomPeers::FromFile(const std::string& path) {
  std::ifstream file(path);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot read the DICOM peers file ", path));
  DicomPeers peers;
  std::string line;
  for (int number = 1; std::getline(file, line); ++number) {
    const absl::string_view content = absl::StripAsciiWhitespace(absl::string_view(line).substr(0, line.find('#')));
    if (content.empty()) continue;
    const auto error = [&](absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", number, ": ", what));
    };
    const std::vector<std::string> fields = absl::StrSplit(content, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() != 3) return error("expected AE_TITLE HOST PORT");
    DicomPeer peer;
    peer.ae_title = fields[0];
    peer.host = fields[1];
    if (!IsValidAeTitle(peer.ae_title)) {
      return error("an AE title has 1 to 16 printable characters and no backslash");
    }
    if (!absl::SimpleAtoi(fields[2], &peer.port) || peer.port < 1 || peer.port > 65535) {
      return error("the port must be 1 to 65535");
    }
    for (const DicomPeer& earlier : peers.peers_) {
      if (earlier.ae_title == peer.ae_title) return error(absl::StrCat("AE title ", peer.ae_title, " is listed twice"));
    }
    absl::StatusOr<std::vector<std::string>> addresses = Resolve(peer.host);
    if (!addresses.ok()) return error(addresses.status().message());
    peer.addresses = *std::move(addresses);
    peers.peers_.push_back(std::move(peer));
  }
  return peers;
}

const DicomPeer* DicomPeers::Find(absl::string_view ae_title, absl::string_view address) const {
  const absl::string_view title = absl::StripAsciiWhitespace(ae_title);
  // An IPv4 peer may reach an IPv6 socket as ::ffff:a.b.c.d.
  const absl::string_view plain = absl::StartsWith(address, "::ffff:") ? address.substr(7) : address;
  for (const DicomPeer& peer : peers_) {
    if (peer.ae_title != title) continue;
    if (std::find(peer.addresses.begin(), peer.addresses.end(), plain) != peer.addresses.end()) return &peer;
  }
  return nullptr;
}

const DicomPeer* DicomPeers::FindByTitle(absl::string_view ae_title) const {
  const absl::string_view title = absl::StripAsciiWhitespace(ae_title);
  for (const DicomPeer& peer : peers_) {
    if (peer.ae_title == title) return &peer;
  }
  return nullptr;
}

}  // namespace segrel::server
