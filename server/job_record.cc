#include "server/job_record.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "segrel/internal/job_record.pb.h"
#include "server/durable_file.h"

namespace segrel::server {
namespace {

// A path inside the job's folder, relative to it (others, such as the bundle's, stay as they are).
std::string Relative(const std::string& path, const std::string& directory) {
  const std::string prefix = directory + "/";
  return absl::StartsWith(path, prefix) ? path.substr(prefix.size()) : path;
}

std::string Absolute(const std::string& path, const std::string& directory) {
  return path.empty() || path.front() == '/' ? path : absl::StrCat(directory, "/", path);
}

int64_t Micros(absl::Time time) { return time == absl::InfiniteFuture() ? 0 : absl::ToUnixMicros(time); }

internal::JobRecord ToProto(const JobRecord& record) {
  const JobSpec& spec = record.spec;
  const std::string& dir = spec.directory;
  internal::JobRecord proto;
  proto.set_id(spec.id);
  proto.set_owner(spec.owner);
  proto.set_model_name(spec.model_name);
  proto.set_model_version(spec.model_version);
  proto.set_bundle_path(spec.bundle_path);
  for (const std::string& sequence : spec.sequences) proto.add_sequences(sequence);
  for (const std::string& file : spec.input_files) proto.add_input_files(Relative(file, dir));
  proto.set_dicom_dir(Relative(spec.dicom_dir, dir));
  proto.set_reference_file(Relative(spec.reference_file, dir));
  for (const auto& [class_index, file] : spec.region_files) {
    internal::RegionFile* region = proto.add_region_files();
    region->set_class_index(class_index);
    region->set_path(Relative(file, dir));
  }
  proto.set_composite(spec.composite);
  proto.set_seed(spec.seed);
  proto.set_maps(spec.maps);
  proto.set_lesions(spec.lesions);
  proto.set_ablation(spec.ablation);
  proto.set_pictures(spec.pictures);
  proto.set_priority(spec.priority);
  proto.set_received_unix_micros(absl::ToUnixMicros(spec.received));
  proto.set_deadline_unix_micros(Micros(spec.deadline));
  proto.set_bytes(spec.bytes);
  proto.set_fingerprint(spec.fingerprint);
  if (record.ending.has_value()) {
    internal::JobRecord::Ending* ending = proto.mutable_ending();
    ending->set_status_code(static_cast<int>(record.ending->status.code()));
    ending->set_status_message(std::string(record.ending->status.message()));
    for (const std::string& result : record.ending->results) ending->add_results(result);
    ending->set_ended_unix_micros(absl::ToUnixMicros(record.ending->ended));
  }
  return proto;
}

JobRecord FromProto(const internal::JobRecord& proto, const std::string& dir) {
  JobRecord record;
  JobSpec& spec = record.spec;
  spec.id = proto.id();
  spec.owner = proto.owner();
  spec.model_name = proto.model_name();
  spec.model_version = proto.model_version();
  spec.bundle_path = proto.bundle_path();
  spec.directory = dir;
  spec.sequences.assign(proto.sequences().begin(), proto.sequences().end());
  for (const std::string& file : proto.input_files()) spec.input_files.push_back(Absolute(file, dir));
  spec.dicom_dir = Absolute(proto.dicom_dir(), dir);
  spec.reference_file = Absolute(proto.reference_file(), dir);
  for (const internal::RegionFile& region : proto.region_files()) {
    spec.region_files.emplace_back(region.class_index(), Absolute(region.path(), dir));
  }
  spec.composite = proto.composite();
  spec.seed = proto.seed();
  spec.maps = proto.maps();
  spec.lesions = proto.lesions();
  spec.ablation = proto.ablation();
  spec.pictures = proto.pictures();
  spec.priority = proto.priority();
  spec.received = absl::FromUnixMicros(proto.received_unix_micros());
  spec.deadline =
      proto.deadline_unix_micros() == 0 ? absl::InfiniteFuture() : absl::FromUnixMicros(proto.deadline_unix_micros());
  spec.bytes = proto.bytes();
  spec.fingerprint = proto.fingerprint();
  if (proto.has_ending()) {
    const internal::JobRecord::Ending& ending = proto.ending();
    record.ending =
        JobEnding{absl::Status(static_cast<absl::StatusCode>(ending.status_code()), ending.status_message()),
                  {ending.results().begin(), ending.results().end()},
                  absl::FromUnixMicros(ending.ended_unix_micros())};
  }
  return record;
}

}  // namespace

absl::Status WriteJobRecord(const JobRecord& record) {
  const std::string path = absl::StrCat(record.spec.directory, "/", kJobRecordName);
  std::string bytes;
  if (!ToProto(record).SerializeToString(&bytes)) return absl::InternalError(absl::StrCat(path, ": cannot encode"));
  return WriteFileDurably(path, bytes);
}

absl::StatusOr<JobRecord> ReadJobRecord(const std::string& directory) {
  const std::string path = absl::StrCat(directory, "/", kJobRecordName);
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(directory, ": no job record"));
  std::stringstream bytes;
  bytes << in.rdbuf();
  internal::JobRecord proto;
  if (!proto.ParseFromString(bytes.str()) || proto.id().empty()) {
    return absl::DataLossError(absl::StrCat(path, ": not a job record"));
  }
  return FromProto(proto, directory);
}

}  // namespace segrel::server
