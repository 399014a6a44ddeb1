// segrel-client: submit studies to segrel-server, follow jobs, fetch results, list models.
// Writes the same outputs as `segrel analyze` (relevance.json, segmentation.nii.gz, ...). Errors end with one
// `segrel-client: error: ...` line on stderr and exit status 1.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/client.h"
#include "core/common/status_macros.h"  // header only: the client links no part of core/
#include "tools/command_line/command_line.h"

namespace {

using segrel::client::SegrelClient;
namespace v1 = segrel::v1;

using segrel::cli::CommandLine;
using segrel::cli::Option;

const std::vector<Option>& ClientOptions() {
  static const auto* const options = new std::vector<Option>{
      {"server", "HOST:PORT", "the segrel-server (default localhost:50051)"},
      {"tls-ca", "FILE", "PEM CA that signed the server's certificate: connect with TLS (default: plaintext)"},
      {"tls-cert", "FILE", "PEM certificate of this client, for servers that require one (mutual TLS)"},
      {"tls-key", "FILE", "PEM private key of this client"},
      {"token", "TOKEN",
       "bearer token for servers with a tokens file (default: $SEGREL_TOKEN); prefer the "
       "variable, a command line is visible to other users"},
      {"model", "M", "submit: the model, NAME or NAME@VERSION (required)"},
      {"input", "NAME=FILE", "submit: a sequence as NIfTI; one per sequence"},
      {"dicom", "DIR", "submit: instead of --input, every DICOM file in DIR"},
      {"reference", "FILE", "submit: a reference segmentation (NIfTI)"},
      {"region", "CLASS=FILE", "submit: explain class CLASS over the mask's voxels"},
      {"out", "DIR", "submit, watch: where the results go (submit: required unless --no-wait)"},
      {"job-id", "ID", "submit: the job's id (default: a new one); resubmitting with it is safe"},
      {"composite", "NAME", "submit: the LRP composite (default: the model's)"},
      {"seed", "N", "submit: seed of the balanced background region (default 0)"},
      {"priority", "N", "submit: higher runs first (default 0)"},
      {"maps", "", "submit: also return one relevance map per sequence"},
      {"lesions", "", "submit: explain each predicted lesion on its own"},
      {"ablation", "", "submit: predict without each sequence and compare with the relevance ranking"},
      {"no-pictures", "", "submit: skip the pictures"},
      {"no-wait", "", "submit: print the job id and return once the study is uploaded"},
      {"service", "NAME", "health: the service asked about (default: the server as a whole; liveness: the process)"},
  };
  return *options;
}

std::string Usage() {
  return "usage: segrel-client [--server HOST:PORT] submit --model M (--input NAME=FILE ... | --dicom DIR) --out DIR\n"
         "                     [submit options]\n"
         "       segrel-client [--server HOST:PORT] watch JOB [--out DIR]\n"
         "       segrel-client [--server HOST:PORT] cancel JOB\n"
         "       segrel-client [--server HOST:PORT] delete JOB   (an ended job's results, on the server)\n"
         "       segrel-client [--server HOST:PORT] models\n"
         "       segrel-client [--server HOST:PORT] jobs   (the jobs you may watch, newest first)\n"
         "       segrel-client [--server HOST:PORT] health [--service NAME]   (prints the health status; exit 0 only\n"
         "                     when SERVING: a container HEALTHCHECK or exec probe)\n"
         "submit uploads the study, then (unless --no-wait) follows the job, writes its results into DIR (for --dicom\n"
         "also segmentation.dcm, a DICOM SEG) and prints the relevance per sequence. Options:\n" +
         segrel::cli::OptionsHelp(ClientOptions());
}

// The value of an option given at most once, or `fallback`.
absl::StatusOr<std::string> Get(const CommandLine& arguments, const std::string& name,
                                const std::string& fallback = "") {
  absl::StatusOr<std::optional<std::string>> value = arguments.Single(name);
  if (!value.ok()) return value.status();
  return value->value_or(fallback);
}

// The channel's TLS files, read. Errors: InvalidArgument naming the option whose file cannot be read.
absl::StatusOr<segrel::client::ChannelSecurity> Security(const CommandLine& arguments) {
  segrel::client::ChannelSecurity security;
  const std::pair<const char*, std::string*> files[] = {
      {"tls-ca", &security.ca_pem}, {"tls-cert", &security.cert_pem}, {"tls-key", &security.key_pem}};
  for (const auto& [name, target] : files) {
    absl::StatusOr<std::string> path = Get(arguments, name);
    if (!path.ok()) return path.status();
    if (path->empty()) continue;
    std::ifstream in(*path);
    if (!in) return absl::InvalidArgumentError(absl::StrCat("--", name, ": cannot read ", *path));
    std::stringstream text;
    text << in.rdbuf();
    *target = text.str();
  }
  if (security.cert_pem.empty() != security.key_pem.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  return security;
}

std::string Describe(const v1::JobStatus& status) {
  switch (status.state()) {
    case v1::QUEUED:
      return absl::StrCat("queued, position ", status.queue_position());
    case v1::RUNNING:
      return absl::StrFormat("running: %s (%.0f %%)", status.stage(), 100 * status.progress());
    case v1::DONE:
      return "done";
    case v1::FAILED:
      return absl::StrCat("failed: ", status.message());
    case v1::CANCELLED:
      return absl::StrCat("cancelled: ", status.message());
    default:
      return "unknown state";
  }
}

// Running updates (every window) overwrite one line: a progress bar; every other state gets its own line.
void PrintStatus(const v1::JobStatus& status) {
  static bool running_line = false;
  if (status.state() == v1::RUNNING) {
    const int width = 30, filled = static_cast<int>(width * std::clamp(status.progress(), 0.0, 1.0));
    std::cerr << absl::StrFormat("\rjob %s: [%s%s] %3.0f %% %-10s", status.job_id(), std::string(filled, '#'),
                                 std::string(width - filled, '.'), 100 * status.progress(), status.stage())
              << std::flush;
    running_line = true;
    return;
  }
  if (running_line) std::cerr << "\n";
  running_line = false;
  std::cerr << "job " << status.job_id() << ": " << Describe(status) << "\n";
}

// The headline of relevance.json: the share of relevance per sequence, and the Dice and ablation cross-check when
// the job had them.
void PrintRelevance(const std::string& out_dir) {
  std::ifstream file(out_dir + "/relevance.json");
  const nlohmann::json report = nlohmann::json::parse(file, nullptr, /*allow_exceptions=*/false);
  if (report.is_discarded() || !report.contains("sequence_ranking")) return;
  std::cout << "relevance per sequence (share of the combined map M):\n";
  for (const auto& name : report["sequence_ranking"]) {
    std::cout << absl::StrFormat("  %-12s %7.4f\n", name.get<std::string>(),
                                 report["sequence_relevance"].value(name.get<std::string>(), 0.0));
  }
  if (report.contains("reference") && report["reference"].contains("dice")) {
    std::cout << absl::StrFormat("reference: Dice %.4f\n", report["reference"]["dice"].get<double>());
  }
  if (report.contains("lesions") && report["lesions"].is_array()) {
    std::cout << report["lesions"].size() << " lesions explained one by one (relevance.json: lesions)\n";
  }
  if (report.contains("ablation") && report["ablation"].contains("rank_correlation_with_relevance")) {
    std::vector<std::string> ranking;
    for (const auto& name : report["ablation"]["ranking"]) ranking.push_back(name.get<std::string>());
    std::cout << absl::StrFormat("sequence ablation ranks %s; rank correlation with the relevance %.2f\n",
                                 absl::StrJoin(ranking, " > "),
                                 report["ablation"]["rank_correlation_with_relevance"].get<double>());
  }
}

// Follows the job; exit status 0 only when it is done.
absl::Status WatchJob(SegrelClient& client, const std::string& job_id, const std::string& out_dir) {
  absl::StatusOr<v1::JobStatus> last = client.Watch(job_id, out_dir, PrintStatus);
  if (!last.ok()) return last.status();
  if (last->state() != v1::DONE) return absl::Status(static_cast<absl::StatusCode>(last->code()), Describe(*last));
  if (out_dir.empty()) return absl::OkStatus();
  PrintRelevance(out_dir);
  std::cout << "outputs in " << out_dir << ": " << absl::StrJoin(last->results(), ", ") << "\n";
  return absl::OkStatus();
}

absl::Status Submit(SegrelClient& client, const CommandLine& arguments) {
  segrel::client::SubmitOptions options;
  SEGREL_ASSIGN_OR_RETURN(options.model, Get(arguments, "model"));
  if (options.model.empty()) return absl::InvalidArgumentError("--model is required");
  SEGREL_ASSIGN_OR_RETURN(const std::string out_dir, Get(arguments, "out"));
  if (out_dir.empty() && !arguments.Flag("no-wait")) return absl::InvalidArgumentError("--out is required");
  SEGREL_ASSIGN_OR_RETURN(options.job_id, Get(arguments, "job-id", segrel::client::NewJobId()));
  for (const std::string& input : arguments.Values("input")) {
    SEGREL_ASSIGN_OR_RETURN(const auto assignment, segrel::cli::SplitAssignment("input", input));
    options.inputs.push_back({assignment.first, assignment.second});
  }
  SEGREL_ASSIGN_OR_RETURN(options.dicom_dir, Get(arguments, "dicom"));
  if (options.inputs.empty() == options.dicom_dir.empty()) {
    return absl::InvalidArgumentError("give the study as --input NAME=FILE pairs or as --dicom DIR");
  }
  SEGREL_ASSIGN_OR_RETURN(options.reference, Get(arguments, "reference"));
  for (const std::string& region : arguments.Values("region")) {
    SEGREL_ASSIGN_OR_RETURN(const auto assignment, segrel::cli::SplitAssignment("region", region));
    int class_index = 0;
    if (!absl::SimpleAtoi(assignment.first, &class_index)) {
      return absl::InvalidArgumentError(absl::StrCat("--region must be CLASS=FILE, not '", region, "'"));
    }
    options.regions.emplace_back(class_index, assignment.second);
  }
  v1::AnalysisOptions& analysis = options.analysis;
  SEGREL_ASSIGN_OR_RETURN(const std::string composite, Get(arguments, "composite"));
  analysis.set_composite(composite);
  SEGREL_ASSIGN_OR_RETURN(const std::optional<int64_t> seed, arguments.Integer("seed", 0));
  if (seed.has_value()) analysis.set_seed(static_cast<uint64_t>(*seed));
  SEGREL_ASSIGN_OR_RETURN(const std::optional<int64_t> priority, arguments.Integer("priority", INT32_MIN, INT32_MAX));
  options.priority = static_cast<int>(priority.value_or(0));
  analysis.set_maps(arguments.Flag("maps"));
  analysis.set_lesions(arguments.Flag("lesions"));
  analysis.set_ablation(arguments.Flag("ablation"));
  analysis.set_no_pictures(arguments.Flag("no-pictures"));

  int last_percent = -1;
  absl::StatusOr<v1::SubmitResponse> response = client.Submit(options, [&](uint64_t sent, uint64_t total) {
    const int percent = total == 0 ? 100 : static_cast<int>(100 * sent / total);
    if (percent == last_percent) return;
    last_percent = percent;
    std::cerr << absl::StrFormat("\rupload %3d %% (%.1f of %.1f MB)", percent, sent / 1e6, total / 1e6)
              << (sent == total ? "\n" : "") << std::flush;
  });
  if (!response.ok()) return response.status();
  std::cerr << "job " << response->job_id() << (response->already_submitted() ? " (submitted before)" : "") << ": "
            << Describe(response->status()) << "\n";
  if (arguments.Flag("no-wait")) {
    std::cout << response->job_id() << "\n";
    return absl::OkStatus();
  }
  return WatchJob(client, response->job_id(), out_dir);
}

absl::Status ListModels(SegrelClient& client) {
  absl::StatusOr<v1::ListModelsResponse> models = client.ListModels();
  if (!models.ok()) return models.status();
  for (const v1::ModelInfo& model : models->models()) {
    std::vector<std::string> sequences;
    for (const v1::SequenceInfo& sequence : model.sequences()) sequences.push_back(sequence.name());
    std::cout << model.name() << "@" << model.version() << "  sequences " << absl::StrJoin(sequences, ", ")
              << "  classes " << absl::StrJoin(model.classes(), ", ") << "  composite " << model.default_composite()
              << "  format " << model.format() << "\n";
  }
  return absl::OkStatus();
}

// One line per job: "JOB STATE MODEL OWNER" (owner "-" when access is open).
absl::Status ListJobs(SegrelClient& client) {
  absl::StatusOr<v1::ListJobsResponse> jobs = client.ListJobs();
  if (!jobs.ok()) return jobs.status();
  for (const v1::JobEntry& job : jobs->jobs()) {
    std::cout << job.status().job_id() << "  " << absl::AsciiStrToLower(v1::JobState_Name(job.status().state())) << "  "
              << job.model() << "  " << (job.owner().empty() ? "-" : job.owner()) << "\n";
  }
  return absl::OkStatus();
}

absl::Status Run(const std::vector<std::string>& words) {
  absl::StatusOr<CommandLine> arguments = CommandLine::Parse(words, ClientOptions());
  if (!arguments.ok()) return arguments.status();
  if (arguments->positional().empty()) return absl::InvalidArgumentError("no command");
  const std::string command = arguments->positional().front();
  absl::StatusOr<std::string> server = Get(*arguments, "server", "localhost:50051");
  if (!server.ok()) return server.status();
  absl::StatusOr<segrel::client::ChannelSecurity> security = Security(*arguments);
  if (!security.ok()) return security.status();
  const char* environment_token = std::getenv("SEGREL_TOKEN");
  absl::StatusOr<std::string> token = Get(*arguments, "token", environment_token ? environment_token : "");
  if (!token.ok()) return token.status();
  SegrelClient client(SegrelClient::Connect(*server, *security), *token);
  const auto job_argument = [&]() -> absl::StatusOr<std::string> {
    if (arguments->positional().size() != 2) {
      return absl::InvalidArgumentError(absl::StrCat(command, " takes one JOB"));
    }
    return arguments->positional()[1];
  };
  if (command == "submit") return Submit(client, *arguments);
  if (command == "models") return ListModels(client);
  if (command == "jobs") return ListJobs(client);
  if (command == "health") {
    absl::StatusOr<std::string> service = Get(*arguments, "service", "");
    if (!service.ok()) return service.status();
    absl::StatusOr<std::string> health =
        segrel::client::CheckHealth(SegrelClient::Connect(*server, *security), *service, absl::Seconds(5));
    if (!health.ok()) return health.status();
    std::cout << *health << "\n";
    if (*health != "SERVING") return absl::UnavailableError(absl::StrCat("the server is ", *health));
    return absl::OkStatus();
  }
  if (command == "watch") {
    absl::StatusOr<std::string> job = job_argument();
    if (!job.ok()) return job.status();
    absl::StatusOr<std::string> out_dir = Get(*arguments, "out");
    if (!out_dir.ok()) return out_dir.status();
    return WatchJob(client, *job, *out_dir);
  }
  if (command == "cancel") {
    absl::StatusOr<std::string> job = job_argument();
    if (!job.ok()) return job.status();
    absl::StatusOr<v1::JobStatus> status = client.Cancel(*job);
    if (!status.ok()) return status.status();
    PrintStatus(*status);
    return absl::OkStatus();
  }
  if (command == "delete") {
    absl::StatusOr<std::string> job = job_argument();
    if (!job.ok()) return job.status();
    return client.Delete(*job);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown command '", command, "'"));
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> words(argv + 1, argv + argc);
  if (segrel::cli::AsksForHelp(words)) {
    std::cout << Usage();
    return 0;
  }
  const absl::Status status = Run(words);
  if (status.ok()) return 0;
  std::cerr << "segrel-client: error: " << status.message() << "\n";
  if (status.code() == absl::StatusCode::kInvalidArgument && status.message().find("--") != absl::string_view::npos) {
    std::cerr << Usage();
  }
  return 1;
}
