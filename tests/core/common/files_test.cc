// RemoveTree: segrel's own recursive removal (std::filesystem::remove_all crashes with PyTorch pip wheels).
#include "core/common/files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "tests/test_util.h"

namespace segrel {
namespace {

namespace fs = std::filesystem;

TEST(RemoveTree, RemovesFilesAndFoldersButNotWhatLinksPointTo) {
  const std::string temp = testing::TestTempDir();
  fs::create_directories(temp + "/tree/a/b/c");
  fs::create_directories(temp + "/outside");
  for (const char* file : {"/tree/x", "/tree/a/y", "/tree/a/b/c/z", "/outside/kept"}) {
    std::ofstream(temp + file) << "data";
  }
  fs::create_symlink(temp + "/outside", temp + "/tree/a/link_to_folder");
  fs::create_symlink(temp + "/outside/kept", temp + "/tree/link_to_file");
  ASSERT_EQ(chmod((temp + "/tree/a/b").c_str(), 0700), 0);

  EXPECT_TRUE(RemoveTree(temp + "/tree").ok());
  EXPECT_FALSE(fs::exists(temp + "/tree"));
  EXPECT_TRUE(fs::exists(temp + "/outside/kept"));  // links are removed, not followed

  EXPECT_TRUE(RemoveTree(temp + "/tree").ok());  // already gone: nothing to do
  std::ofstream(temp + "/single") << "data";
  EXPECT_TRUE(RemoveTree(temp + "/single").ok());  // a plain file
  EXPECT_FALSE(fs::exists(temp + "/single"));
}

TEST(RemoveTree, WhatCannotBeRemovedIsAnErrorNamingIt) {
  // Files of /proc cannot be removed, not even by root (the tests run as root in CI).
  const absl::Status status = RemoveTree("/proc/self/status");
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_NE(status.message().find("/proc/self/status: cannot remove"), absl::string_view::npos) << status;
}

}  // namespace
}  // namespace segrel
