// A small Prometheus metrics registry: counters, gauges and histograms with labels, rendered in the text
// exposition format 0.0.4. Debian 12 has no prometheus-cpp; this covers what segrel-server exports, with the same
// meaning (counters only go up, histograms have cumulative `le` buckets, `_sum` and `_count`).
#ifndef SEGREL_SERVER_METRICS_REGISTRY_H_
#define SEGREL_SERVER_METRICS_REGISTRY_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace segrel::server {

class MetricsRegistry;

// One metric with its series (one per combination of label values). Thread-safe; owned by its registry.
class MetricFamily {
 public:
  enum class Type { kCounter, kGauge, kHistogram };

  // Counters: adds `value` (>= 0). Gauges: adds `value` (any sign).
  void Add(const std::vector<std::string>& labels, double value = 1);
  // Gauges: sets the value.
  void Set(const std::vector<std::string>& labels, double value);
  // Histograms: records one observation.
  void Observe(const std::vector<std::string>& labels, double value);

 private:
  friend class MetricsRegistry;
  struct Series {
    double value = 0;                     // counter, gauge
    std::vector<uint64_t> bucket_counts;  // histogram, per upper bound (not cumulative)
    double sum = 0;
    uint64_t count = 0;
  };
  MetricFamily(absl::Mutex* mutex, std::string name, std::string help, Type type, std::vector<std::string> label_names,
               std::vector<double> buckets)
      : mutex_(mutex),
        name_(std::move(name)),
        help_(std::move(help)),
        type_(type),
        label_names_(std::move(label_names)),
        buckets_(std::move(buckets)) {}
  Series& SeriesFor(const std::vector<std::string>& labels) ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mutex_);
  void Render(std::string& out) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mutex_);
  // Checks that the caller holds the registry's lock, and tells the thread-safety analysis that this family's
  // mutex_ is that lock (it cannot see that the pointer points there).
  void AssertRegistryLockHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK(*mutex_) { mutex_->AssertHeld(); }

  absl::Mutex* const mutex_;  // the registry's
  const std::string name_;
  const std::string help_;
  const Type type_;
  const std::vector<std::string> label_names_;
  const std::vector<double> buckets_;  // histogram upper bounds, increasing (+Inf is implicit)
  std::map<std::vector<std::string>, Series> series_ ABSL_GUARDED_BY(*mutex_);
};

// Thread-safe. Families live as long as the registry.
class MetricsRegistry {
 public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  MetricFamily& Counter(const std::string& name, const std::string& help, std::vector<std::string> labels = {});
  MetricFamily& Gauge(const std::string& name, const std::string& help, std::vector<std::string> labels = {});
  MetricFamily& Histogram(const std::string& name, const std::string& help, std::vector<std::string> labels,
                          std::vector<double> buckets);

  // Called at every Render, before it: for values read when scraped (GPU memory).
  void AddCollector(std::function<void()> collect);

  // Every family in the text exposition format, in the order they were added.
  std::string Render() const;

 private:
  MetricFamily& Add(const std::string& name, const std::string& help, MetricFamily::Type type,
                    std::vector<std::string> labels, std::vector<double> buckets);

  mutable absl::Mutex mutex_;
  std::vector<std::unique_ptr<MetricFamily>> families_ ABSL_GUARDED_BY(mutex_);
  std::vector<std::function<void()>> collectors_ ABSL_GUARDED_BY(mutex_);
};

// Upper bounds start, start·factor, ... (count of them): Prometheus' exponential buckets.
std::vector<double> ExponentialBuckets(double start, double factor, int count);
// Upper bounds start, start + width, ... (count of them).
std::vector<double> LinearBuckets(double start, double width, int count);

}  // namespace segrel::server

#endif  // SEGREL_SERVER_METRICS_REGISTRY_H_
