#include "server/metrics_registry.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace segrel::server {
namespace {

std::string FormatValue(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (std::isnan(value)) return "NaN";
  return absl::StrFormat("%.17g", value);
}

std::string EscapeLabel(const std::string& value) {
  return absl::StrReplaceAll(value, {{"\\", "\\\\"}, {"\"", "\\\""}, {"\n", "\\n"}});
}

// {a="x",b="y"} plus an optional extra label (le for buckets); "" without labels.
std::string LabelText(const std::vector<std::string>& names, const std::vector<std::string>& values,
                      const std::string& extra_name = "", const std::string& extra_value = "") {
  std::string text;
  for (size_t i = 0; i < names.size(); ++i) {
    absl::StrAppend(&text, text.empty() ? "" : ",", names[i], "=\"", EscapeLabel(values[i]), "\"");
  }
  if (!extra_name.empty()) absl::StrAppend(&text, text.empty() ? "" : ",", extra_name, "=\"", extra_value, "\"");
  return text.empty() ? "" : absl::StrCat("{", text, "}");
}

}  // namespace

MetricFamily::Series& MetricFamily::SeriesFor(const std::vector<std::string>& labels) {
  std::vector<std::string> key = labels;
  key.resize(label_names_.size());  // a caller's mistake must not corrupt the exposition
  Series& series = series_[key];
  if (type_ == Type::kHistogram && series.bucket_counts.empty()) series.bucket_counts.assign(buckets_.size(), 0);
  return series;
}

void MetricFamily::Add(const std::vector<std::string>& labels, double value) {
  absl::MutexLock lock(mutex_);
  if (type_ == Type::kCounter && value < 0) return;
  SeriesFor(labels).value += value;
}

void MetricFamily::Set(const std::vector<std::string>& labels, double value) {
  absl::MutexLock lock(mutex_);
  SeriesFor(labels).value = value;
}

void MetricFamily::Observe(const std::vector<std::string>& labels, double value) {
  absl::MutexLock lock(mutex_);
  Series& series = SeriesFor(labels);
  for (size_t b = 0; b < buckets_.size(); ++b) {
    if (value <= buckets_[b]) {
      ++series.bucket_counts[b];
      break;
    }
  }
  series.sum += value;
  ++series.count;
}

void MetricFamily::Render(std::string& out) const {
  static constexpr const char* kTypeNames[] = {"counter", "gauge", "histogram"};
  absl::StrAppend(&out, "# HELP ", name_, " ", help_, "\n# TYPE ", name_, " ", kTypeNames[static_cast<int>(type_)],
                  "\n");
  for (const auto& [labels, series] : series_) {
    if (type_ != Type::kHistogram) {
      absl::StrAppend(&out, name_, LabelText(label_names_, labels), " ", FormatValue(series.value), "\n");
      continue;
    }
    uint64_t cumulative = 0;
    for (size_t b = 0; b < buckets_.size(); ++b) {
      cumulative += series.bucket_counts[b];
      absl::StrAppend(&out, name_, "_bucket", LabelText(label_names_, labels, "le", FormatValue(buckets_[b])), " ",
                      cumulative, "\n");
    }
    absl::StrAppend(&out, name_, "_bucket", LabelText(label_names_, labels, "le", "+Inf"), " ", series.count, "\n");
    absl::StrAppend(&out, name_, "_sum", LabelText(label_names_, labels), " ", FormatValue(series.sum), "\n");
    absl::StrAppend(&out, name_, "_count", LabelText(label_names_, labels), " ", series.count, "\n");
  }
}

MetricFamily& MetricsRegistry::Add(const std::string& name, const std::string& help, MetricFamily::Type type,
                                   std::vector<std::string> labels, std::vector<double> buckets) {
  absl::MutexLock lock(&mutex_);
  families_.push_back(std::unique_ptr<MetricFamily>(
      new MetricFamily(&mutex_, name, help, type, std::move(labels), std::move(buckets))));
  return *families_.back();
}

MetricFamily& MetricsRegistry::Counter(const std::string& name, const std::string& help,
                                       std::vector<std::string> labels) {
  return Add(name, help, MetricFamily::Type::kCounter, std::move(labels), {});
}

MetricFamily& MetricsRegistry::Gauge(const std::string& name, const std::string& help,
                                     std::vector<std::string> labels) {
  return Add(name, help, MetricFamily::Type::kGauge, std::move(labels), {});
}

MetricFamily& MetricsRegistry::Histogram(const std::string& name, const std::string& help,
                                         std::vector<std::string> labels, std::vector<double> buckets) {
  return Add(name, help, MetricFamily::Type::kHistogram, std::move(labels), std::move(buckets));
}

void MetricsRegistry::AddCollector(std::function<void()> collect) {
  absl::MutexLock lock(&mutex_);
  collectors_.push_back(std::move(collect));
}

std::string MetricsRegistry::Render() const {
  std::vector<std::function<void()>> collectors;
  {
    absl::MutexLock lock(&mutex_);
    collectors = collectors_;
  }
  for (const std::function<void()>& collect : collectors) collect();  // they set series: not under the lock
  absl::MutexLock lock(&mutex_);
  std::string out;
  for (const std::unique_ptr<MetricFamily>& family : families_) {
    family->AssertRegistryLockHeld();
    family->Render(out);
  }
  return out;
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> bounds;
  for (int i = 0; i < count; ++i) bounds.push_back(start * std::pow(factor, i));
  return bounds;
}

std::vector<double> LinearBuckets(double start, double width, int count) {
  std::vector<double> bounds;
  for (int i = 0; i < count; ++i) bounds.push_back(start + width * i);
  return bounds;
}

}  // namespace segrel::server
