#include "core/analysis/pipeline.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/files.h"
#include "core/common/status_macros.h"
#include "core/common/torch_status.h"
#include "core/graph/torchscript_importer.h"
#include "core/io/dicom_seg.h"
#include "core/io/dicom_study.h"
#include "core/io/nifti.h"
#include "core/lrp/composite.h"
#include "core/model/bundle.h"
#include "core/report/pictures.h"
#include "core/volume/normalisation.h"

namespace segrel::analysis {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string Expected(const model::Bundle& bundle) {
  return absl::StrCat("the bundle ", bundle.name, " expects ", absl::StrJoin(bundle.SequenceNames(), ", "));
}

// A folder's NIfTI file named after `name` (NAME.nii.gz or NAME.nii, any letter case), or "".
std::string FindSequenceFile(const std::filesystem::path& folder, const std::string& name) {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(folder, error)) {
    if (!entry.is_regular_file(error)) continue;
    const std::string file = absl::AsciiStrToLower(entry.path().filename().string());
    const std::string wanted = absl::AsciiStrToLower(name);
    if (file == wanted + ".nii.gz" || file == wanted + ".nii") return entry.path().string();
  }
  return "";
}

// Whether `dir` holds a NIfTI file (then it is a NIfTI study folder; else it is read as DICOM).
bool HoldsNifti(const std::filesystem::path& dir) {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    const std::string file = absl::AsciiStrToLower(entry.path().filename().string());
    if (absl::EndsWith(file, ".nii") || absl::EndsWith(file, ".nii.gz")) return true;
  }
  return false;
}

// A DICOM study folder: series mapped by the bundle's rules, resampled onto the reference sequence's grid.
absl::StatusOr<io::AssembledStudy> ReadBundleDicomStudy(const model::Bundle& bundle, const std::string& dir) {
  if (!bundle.series_rules.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(dir, " holds no NIfTI file (NAME.nii.gz) and the bundle ",
                                                   bundle.name, " has no series_rules to map DICOM series; ",
                                                   Expected(bundle)));
  }
  return io::ReadDicomStudy(dir, *bundle.series_rules, bundle.SequenceNames(), bundle.reference_sequence);
}

// The bundle's sequences, in its channel order, from NAME=FILE pairs or a folder.
absl::StatusOr<std::vector<io::SequenceFile>> BundleInputs(const model::Bundle& bundle,
                                                           const AnalysisRequest& request) {
  if (!request.study_dir.empty() && !request.inputs.empty()) {
    return absl::InvalidArgumentError("give the study either as --input NAME=FILE pairs or as a folder, not both");
  }
  std::vector<io::SequenceFile> files;
  std::vector<std::string> missing;
  if (!request.study_dir.empty()) {
    std::error_code error;
    if (!std::filesystem::is_directory(request.study_dir, error)) {
      return absl::NotFoundError(absl::StrCat(request.study_dir, ": no such folder"));
    }
    for (const std::string& name : bundle.SequenceNames()) {
      const std::string path = FindSequenceFile(request.study_dir, name);
      if (path.empty()) missing.push_back(name);
      files.push_back({name, path});
    }
    if (!missing.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(request.study_dir, " has no ", absl::StrJoin(missing, ", "),
                                                     " (NAME.nii.gz or NAME.nii); ", Expected(bundle)));
    }
    return files;
  }
  std::map<std::string, std::string> given;
  for (const io::SequenceFile& input : request.inputs) given[input.name] = input.path;
  std::vector<std::string> unexpected;
  const std::vector<std::string> names = bundle.SequenceNames();
  for (const auto& [name, path] : given) {
    if (std::find(names.begin(), names.end(), name) == names.end()) unexpected.push_back(name);
  }
  for (const std::string& name : names) {
    const auto it = given.find(name);
    if (it == given.end()) {
      missing.push_back(name);
    } else {
      files.push_back({name, it->second});
    }
  }
  if (!unexpected.empty() || !missing.empty()) {
    std::string problem;
    if (!missing.empty()) problem = absl::StrCat("missing sequence ", absl::StrJoin(missing, ", "));
    if (!unexpected.empty()) {
      absl::StrAppend(&problem, problem.empty() ? "" : "; ", "unexpected sequence ", absl::StrJoin(unexpected, ", "));
    }
    return absl::InvalidArgumentError(absl::StrCat(problem, "; ", Expected(bundle)));
  }
  return files;
}

// Per-channel z-box bounds [1, C, 1, 1, 1] from the bundle's ranges, if every sequence declares one.
void SetBoxBounds(const model::Bundle& bundle, lrp::RuleParameters& parameters) {
  std::vector<float> low, high;
  for (const model::SequenceSpec& spec : bundle.sequences) {
    if (!spec.range.has_value()) return;
    low.push_back(static_cast<float>(spec.range->first));
    high.push_back(static_cast<float>(spec.range->second));
  }
  const int64_t channels = static_cast<int64_t>(low.size());
  parameters.box_low = at::tensor(low).view({1, channels, 1, 1, 1});
  parameters.box_high = at::tensor(high).view({1, channels, 1, 1, 1});
}

}  // namespace

absl::StatusOr<AnalysisResult> RunAnalysis(const AnalysisRequest& request) {
  const auto start = std::chrono::steady_clock::now();
  SEGREL_RETURN_IF_ERROR(ReportProgress(request.progress, "read", 0, 1));
  AnalysisResult result;
  std::optional<model::Bundle> bundle;
  if (model::LooksLikeBundle(request.model)) {
    SEGREL_ASSIGN_OR_RETURN(bundle, model::ReadBundle(request.model));
  }
  const std::string composite = request.composite.value_or(bundle ? bundle->composite : "epsilon-plus");
  if (const absl::StatusOr<lrp::Composite> known = lrp::Composite::Create(composite); !known.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--composite: ", known.status().message()));
  }

  std::vector<io::SequenceFile> files = request.inputs;
  if (!bundle && !request.study_dir.empty()) {
    return absl::InvalidArgumentError("a study folder needs a model bundle, which names the sequences");
  }
  std::error_code error;
  if (bundle && request.inputs.empty() && std::filesystem::is_directory(request.study_dir, error) &&
      !HoldsNifti(request.study_dir)) {
    SEGREL_ASSIGN_OR_RETURN(io::AssembledStudy assembled, ReadBundleDicomStudy(*bundle, request.study_dir));
    result.study = std::move(assembled.study);
    result.assembly = io::DescribeAssembly(assembled);
    result.reference_series = std::move(assembled.reference_series);
  } else {
    if (bundle) {
      SEGREL_ASSIGN_OR_RETURN(files, BundleInputs(*bundle, request));
    }
    SEGREL_ASSIGN_OR_RETURN(result.study, io::ReadNiftiStudy(files));
  }
  ExplainOptions options;
  options.composite = composite;
  options.seed = request.seed;
  options.device = request.device;
  for (const auto& [class_index, path] : request.regions) {
    SEGREL_ASSIGN_OR_RETURN(const volume::Volume mask, io::ReadNifti(path));
    SEGREL_RETURN_IF_ERROR(io::CheckSameGrid(mask, result.study.volumes.front()));
    options.region_masks[class_index] = mask.data;
  }
  if (!request.reference.empty()) {
    SEGREL_ASSIGN_OR_RETURN(const volume::Volume reference, io::ReadNifti(request.reference));
    SEGREL_RETURN_IF_ERROR(io::CheckSameGrid(reference, result.study.volumes.front()));
    options.reference = reference.data;
  }
  options.per_lesion = request.per_lesion;
  options.ablation = request.ablation;
  options.progress = request.progress;
  const double read_seconds = SecondsSince(start);

  const std::string model_path = bundle ? bundle->model_path : request.model;
  const auto load_start = std::chrono::steady_clock::now();
  ModelReplicas this_analysis_only;
  ModelReplicas& replicas = request.replicas != nullptr ? *request.replicas : this_analysis_only;
  SEGREL_ASSIGN_OR_RETURN(ModelReplica* const replica, replicas.Get(model_path));
  const double load_seconds = SecondsSince(load_start);
  const auto normalise_start = std::chrono::steady_clock::now();
  SEGREL_ASSIGN_OR_RETURN(result.input, CatchTorch("preparing the input", [&]() -> absl::StatusOr<at::Tensor> {
    std::vector<at::Tensor> channels;
    for (size_t s = 0; s < result.study.volumes.size(); ++s) {
      const volume::Normalisation normalisation =
          bundle ? bundle->sequences[s].normalisation : volume::Normalisation::kNone;
      channels.push_back(volume::Normalise(result.study.volumes[s].data, normalisation));
    }
    return at::stack(channels).unsqueeze(0);
  }));
  const double normalise_seconds = SecondsSince(normalise_start);
  if (bundle) {
    SetBoxBounds(*bundle, options.rule_parameters);
    options.window = WindowOptions{bundle->patch_size, bundle->overlap, bundle->sigma_fraction};
  } else if (!request.patch.empty()) {
    options.window = WindowOptions{request.patch};
  }
  if (options.window) options.window->cache_bytes = request.window_cache_bytes;
  SEGREL_ASSIGN_OR_RETURN(result.explanation, ExplainSegmentation(*replica, result.input, options));

  ReportContext& context = result.context;
  context.model = bundle ? bundle->name : std::filesystem::path(model_path).filename().string();
  if (bundle) {
    context.model_version = bundle->version;
    context.license = bundle->license;
    context.class_names = bundle->classes;
  }
  context.sequences = result.study.names;
  const auto sizes = result.study.volumes.front().SpatialSizes();
  context.grid = {sizes[0], sizes[1], sizes[2]};
  context.composite = composite;
  context.seed = request.seed;
  context.tau = options.tau;
  context.device = request.device.str();
  context.threads = at::get_num_threads();
  if (options.window) context.patch = options.window->patch;
  context.seconds["read"] = read_seconds;
  context.seconds["load_model"] = load_seconds;
  context.seconds["normalise"] = normalise_seconds;
  result.class_names = context.class_names;
  return result;
}

absl::StatusOr<std::vector<std::string>> WriteAnalysis(const AnalysisResult& result, const std::string& out_dir,
                                                       bool maps, bool pictures) {
  const auto start = std::chrono::steady_clock::now();
  std::error_code error;
  std::filesystem::create_directories(out_dir, error);
  if (error) return absl::InternalError(absl::StrCat(out_dir, ": cannot create the folder: ", error.message()));
  std::vector<std::string> written = {"relevance.json", "segmentation.nii.gz"};
  const volume::Volume& grid = result.study.volumes.front();
  SEGREL_RETURN_IF_ERROR(io::WriteNifti(out_dir + "/segmentation.nii.gz", result.explanation.segmentation,
                                        io::NiftiDataType::kUInt8, grid));
  if (result.reference_series) {
    // A DICOM study: the segmentation also as DICOM SEG, referencing the series whose grid it is on, for PACS.
    io::DicomSegOptions seg_options;
    seg_options.algorithm_name = absl::StrCat("segrel ", result.context.model, " ", result.context.model_version);
    SEGREL_RETURN_IF_ERROR(io::WriteDicomSeg(out_dir + "/segmentation.dcm", result.explanation.segmentation,
                                             result.class_names, *result.reference_series, seg_options));
    written.push_back("segmentation.dcm");
  }
  if (maps) {
    for (size_t s = 0; s < result.study.names.size(); ++s) {
      const std::string name = absl::StrCat("relevance_", result.study.names[s], ".nii.gz");
      SEGREL_RETURN_IF_ERROR(io::WriteNifti(out_dir + "/" + name, result.explanation.relevance_map[s],
                                            io::NiftiDataType::kFloat32, grid));
      written.push_back(name);
    }
  }
  std::vector<std::string> notes;
  if (pictures) {
    report::StudyPictures study_pictures;
    study_pictures.sequences = result.study.names;
    study_pictures.images = result.input[0];
    study_pictures.relevance = result.explanation.relevance_map;
    study_pictures.segmentation = result.explanation.segmentation;
    study_pictures.shares = Shares(result.explanation.raw);
    for (const ClassExplanation& explained : result.explanation.classes) {
      const std::string name = explained.class_index < static_cast<int64_t>(result.class_names.size())
                                   ? result.class_names[explained.class_index]
                                   : absl::StrCat("class ", explained.class_index);
      study_pictures.class_shares.emplace_back(name, Shares(explained.raw));
    }
    absl::StatusOr<std::vector<std::string>> images = report::WriteStudyPictures(study_pictures, out_dir);
    if (images.status().code() == absl::StatusCode::kFailedPrecondition) {
      // No gnuplot: the pictures are a view of results that are all there; losing the analysis for them would
      // be worse than saying why they are missing.
      notes.push_back(absl::StrCat("no pictures: ", images.status().message()));
    } else if (!images.ok()) {
      return images.status();
    } else {
      written.insert(written.end(), images->begin(), images->end());
    }
  }
  ReportContext context = result.context;
  context.seconds["write"] = SecondsSince(start);
  Explanation explanation = result.explanation;  // shares the tensors: only the notes may grow
  explanation.notes.insert(explanation.notes.end(), notes.begin(), notes.end());
  SEGREL_RETURN_IF_ERROR(WriteTextFile(out_dir + "/relevance.json", RelevanceReportJson(explanation, context)));
  return written;
}

}  // namespace segrel::analysis
