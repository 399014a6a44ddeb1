// segrel-client: submit studies to segrel-server, follow jobs, fetch results, list models.
// Writes the same outputs as `segrel analyze` (relevance.json, segmentation.nii.gz, ...). Errors end with one
// `segrel-client: error: ...` line on stderr and exit status 1.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/client.h"

namespace {

using segrel::client::SegrelClient;
namespace v1 = segrel::v1;

constexpr char kUsage[] =
    "usage: segrel-client [--server HOST:PORT] submit --model M (--input NAME=FILE ... | --dicom DIR) --out DIR\n"
    "                     [--reference FILE] [--region CLASS=FILE ...] [--job-id ID] [--composite NAME] [--seed N]\n"
    "                     [--maps] [--lesions] [--ablation] [--no-pictures] [--priority N] [--no-wait]\n"
    "       segrel-client [--server HOST:PORT] watch JOB [--out DIR]\n"
    "       segrel-client [--server HOST:PORT] cancel JOB\n"
    "       segrel-client [--server HOST:PORT] models\n"
    "--server defaults to localhost:50051. submit uploads the study, then (unless --no-wait) follows the job and\n"
    "writes its results into DIR (for --dicom also segmentation.dcm, a DICOM SEG) and prints the relevance per\n"
    "sequence; resubmitting with the same --job-id after a broken connection is safe.\n";

const std::set<std::string> kValueOptions = {"server", "model",     "input", "dicom", "reference", "region",
                                             "out",    "job-id",    "composite", "seed", "priority"};
const std::set<std::string> kSwitches = {"maps", "lesions", "ablation", "no-pictures", "no-wait"};

struct Arguments {
  std::multimap<std::string, std::string> options;
  std::vector<std::string> positional;

  std::string Get(const std::string& name, const std::string& fallback = "") const {
    const auto it = options.find(name);
    return it == options.end() ? fallback : it->second;
  }
  bool Has(const std::string& name) const { return options.count(name) > 0; }
};

absl::StatusOr<Arguments> Parse(int argc, char** argv) {
  Arguments arguments;
  for (int i = 1; i < argc; ++i) {
    std::string word = argv[i];
    if (word.rfind("--", 0) != 0) {
      arguments.positional.push_back(word);
      continue;
    }
    std::string name = word.substr(2), value;
    const size_t equals = name.find('=');
    const bool inline_value = equals != std::string::npos;
    if (inline_value) {
      value = name.substr(equals + 1);
      name = name.substr(0, equals);
    }
    if (kSwitches.count(name) && !inline_value) {
      arguments.options.emplace(name, "");
    } else if (kValueOptions.count(name)) {
      if (!inline_value) {
        if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
        value = argv[++i];
      }
      arguments.options.emplace(name, value);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown option --", name));
    }
  }
  return arguments;
}

std::string Describe(const v1::JobStatus& status) {
  switch (status.state()) {
    case v1::QUEUED: return absl::StrCat("queued, position ", status.queue_position());
    case v1::RUNNING: return absl::StrFormat("running: %s (%.0f %%)", status.stage(), 100 * status.progress());
    case v1::DONE: return "done";
    case v1::FAILED: return absl::StrCat("failed: ", status.message());
    case v1::CANCELLED: return absl::StrCat("cancelled: ", status.message());
    default: return "unknown state";
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

absl::Status Submit(SegrelClient& client, const Arguments& arguments) {
  segrel::client::SubmitOptions options;
  options.model = arguments.Get("model");
  if (options.model.empty()) return absl::InvalidArgumentError("--model is required");
  const std::string out_dir = arguments.Get("out");
  if (out_dir.empty() && !arguments.Has("no-wait")) return absl::InvalidArgumentError("--out is required");
  options.job_id = arguments.Get("job-id", segrel::client::NewJobId());
  for (auto [it, end] = arguments.options.equal_range("input"); it != end; ++it) {
    const size_t equals = it->second.find('=');
    if (equals == std::string::npos || equals == 0 || equals + 1 == it->second.size()) {
      return absl::InvalidArgumentError(absl::StrCat("--input must be NAME=FILE, not '", it->second, "'"));
    }
    options.inputs.push_back({it->second.substr(0, equals), it->second.substr(equals + 1)});
  }
  options.dicom_dir = arguments.Get("dicom");
  if (options.inputs.empty() == options.dicom_dir.empty()) {
    return absl::InvalidArgumentError("give the study as --input NAME=FILE pairs or as --dicom DIR");
  }
  options.reference = arguments.Get("reference");
  for (auto [it, end] = arguments.options.equal_range("region"); it != end; ++it) {
    const size_t equals = it->second.find('=');
    int class_index = 0;
    if (equals == std::string::npos || !absl::SimpleAtoi(it->second.substr(0, equals), &class_index) ||
        equals + 1 == it->second.size()) {
      return absl::InvalidArgumentError(absl::StrCat("--region must be CLASS=FILE, not '", it->second, "'"));
    }
    options.regions.emplace_back(class_index, it->second.substr(equals + 1));
  }
  v1::AnalysisOptions& analysis = options.analysis;
  analysis.set_composite(arguments.Get("composite"));
  if (arguments.Has("seed")) {
    uint64_t seed;
    if (!absl::SimpleAtoi(arguments.Get("seed"), &seed)) return absl::InvalidArgumentError("--seed must be a number");
    analysis.set_seed(seed);
  }
  if (arguments.Has("priority") && !absl::SimpleAtoi(arguments.Get("priority"), &options.priority)) {
    return absl::InvalidArgumentError("--priority must be a number");
  }
  analysis.set_maps(arguments.Has("maps"));
  analysis.set_lesions(arguments.Has("lesions"));
  analysis.set_ablation(arguments.Has("ablation"));
  analysis.set_no_pictures(arguments.Has("no-pictures"));

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
  if (arguments.Has("no-wait")) {
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
              << "\n";
  }
  return absl::OkStatus();
}

absl::Status Run(int argc, char** argv) {
  absl::StatusOr<Arguments> arguments = Parse(argc, argv);
  if (!arguments.ok()) return arguments.status();
  if (arguments->positional.empty()) return absl::InvalidArgumentError("no command");
  const std::string command = arguments->positional.front();
  SegrelClient client(SegrelClient::Connect(arguments->Get("server", "localhost:50051")));
  const auto job_argument = [&]() -> absl::StatusOr<std::string> {
    if (arguments->positional.size() != 2) return absl::InvalidArgumentError(absl::StrCat(command, " takes one JOB"));
    return arguments->positional[1];
  };
  if (command == "submit") return Submit(client, *arguments);
  if (command == "models") return ListModels(client);
  if (command == "watch") {
    absl::StatusOr<std::string> job = job_argument();
    if (!job.ok()) return job.status();
    return WatchJob(client, *job, arguments->Get("out"));
  }
  if (command == "cancel") {
    absl::StatusOr<std::string> job = job_argument();
    if (!job.ok()) return job.status();
    absl::StatusOr<v1::JobStatus> status = client.Cancel(*job);
    if (!status.ok()) return status.status();
    PrintStatus(*status);
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown command '", command, "'"));
}

}  // namespace

int main(int argc, char** argv) {
  const absl::Status status = Run(argc, argv);
  if (status.ok()) return 0;
  std::cerr << "segrel-client: error: " << status.message() << "\n";
  if (status.code() == absl::StatusCode::kInvalidArgument && status.message().find("--") != absl::string_view::npos) {
    std::cerr << kUsage;
  }
  return 1;
}
