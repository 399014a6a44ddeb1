#include "server/audit_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/metrics.h"

namespace segrel::server {
namespace {

bool IsPlain(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '@' || c == ':' ||
         c == '/' || c == '+' || c == '-';
}

// A value as one token of the line: "-" for nothing, every other byte as %XX.
std::string Escaped(absl::string_view value) {
  if (value.empty()) return "-";
  std::string out;
  for (char c : value) {
    if (IsPlain(c)) {
      out.push_back(c);
    } else {
      absl::StrAppendFormat(&out, "%%%02X", static_cast<unsigned char>(c));
    }
  }
  return out;
}

}  // namespace

const char* AuditEventName(AuditEvent event) {
  switch (event) {
    case AuditEvent::kSubmitted:
      return "submitted";
    case AuditEvent::kRecovered:
      return "recovered";
    case AuditEvent::kStarted:
      return "started";
    case AuditEvent::kEnded:
      return "ended";
    case AuditEvent::kInterrupted:
      return "interrupted";
    case AuditEvent::kCancelled:
      return "cancelled";
    case AuditEvent::kDelivered:
      return "delivered";
    case AuditEvent::kDeleted:
      return "deleted";
    case AuditEvent::kExpired:
      return "expired";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(const std::string& path) {
  if (path == "-") return std::unique_ptr<AuditLog>(new AuditLog(stderr, /*owned=*/false));
  const int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  std::FILE* file = fd < 0 ? nullptr : fdopen(fd, "a");
  if (file == nullptr) {
    const int error = errno;
    if (fd >= 0) close(fd);
    return absl::InternalError(absl::StrCat("cannot open the audit log ", path, ": ", std::strerror(error)));
  }
  return std::unique_ptr<AuditLog>(new AuditLog(file, /*owned=*/true));
}

AuditLog::~AuditLog() {
  if (owned_) std::fclose(file_);
}

void AuditLog::Record(AuditEvent event, const Job& job, const AuditDetails& details) {
  const JobSpec& spec = job.spec();
  std::string line = absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::Now(), absl::UTCTimeZone()),
                                  " segrel-audit event=", AuditEventName(event), " job=", Escaped(spec.id),
                                  " client=", Escaped(spec.owner),
                                  " model=", Escaped(absl::StrCat(spec.model_name, "@", spec.model_version)));
  if (details.by) absl::StrAppend(&line, " by=", Escaped(*details.by));
  if (details.code) absl::StrAppend(&line, " code=", CodeName(*details.code));
  if (event == AuditEvent::kSubmitted) absl::StrAppend(&line, " bytes_in=", spec.bytes);
  if (details.bytes_out) absl::StrAppend(&line, " bytes_out=", *details.bytes_out);
  line.push_back('\n');
  absl::MutexLock lock(&mutex_);
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0) ++failed_writes_;
}

uint64_t AuditLog::failed_writes() const {
  absl::MutexLock lock(&mutex_);
  return failed_writes_;
}

}  // namespace segrel::server
