// CommandLine: the one argument parser of segrel, segrel-server and segrel-client.
#include "tools/command_line/command_line.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "tests/test_util.h"

namespace segrel::cli {
namespace {

using segrel::testing::StatusIs;
using segrel::testing::TestTempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::vector<Option> kOptions = {
    {"input", "NAME=FILE", "a sequence; repeat for each"},
    {"out", "DIR", "where the outputs go"},
    {"workers", "N", "CPU workers (default 1)"},
    {"job-deadline", "DURATION", "time a job may wait (default 1h)"},
    {"maps", "", "also write the relevance maps"},
};

absl::StatusOr<CommandLine> Parse(const std::vector<std::string>& arguments) {
  return CommandLine::Parse(arguments, kOptions);
}

TEST(CommandLine, ValuesSwitchesAndPositionalWordsInAnyOrder) {
  absl::StatusOr<CommandLine> line =
      Parse({"submit", "--input", "T1=a.nii", "--maps", "--input=T2=b.nii", "--out=x", "job", "--", "--out"});
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_THAT(line->Values("input"), ElementsAre("T1=a.nii", "T2=b.nii"));
  EXPECT_EQ(line->Single("out").value(), "x");
  EXPECT_TRUE(line->Flag("maps"));
  EXPECT_FALSE(line->Flag("workers"));
  EXPECT_FALSE(line->Single("workers").value().has_value());
  EXPECT_THAT(line->positional(), ElementsAre("submit", "job", "--out")) << "everything after -- is positional";
}

TEST(CommandLine, BadArgumentsNameTheOption) {
  EXPECT_THAT(Parse({"--model", "m"}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(Parse({"--model", "m"}).status().message()), HasSubstr("unknown option --model"));
  EXPECT_THAT(std::string(Parse({"--out"}).status().message()), HasSubstr("--out needs a value"));
  EXPECT_THAT(std::string(Parse({"--maps=yes"}).status().message()), HasSubstr("--maps takes no value"));
  absl::StatusOr<CommandLine> twice = Parse({"--out", "a", "--out", "b"});
  ASSERT_TRUE(twice.ok());
  EXPECT_THAT(twice->Single("out"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(CommandLine, IntegersAndDurationsAreCheckedWithTheOptionNamed) {
  absl::StatusOr<CommandLine> line = Parse({"--workers", "3", "--job-deadline", "1h30m"});
  ASSERT_TRUE(line.ok());
  EXPECT_EQ(line->Integer("workers", 0, 64).value(), 3);
  EXPECT_EQ(line->Duration("job-deadline").value(), absl::Minutes(90));
  absl::StatusOr<CommandLine> none = Parse({});
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->Integer("workers").value().has_value()) << "an option not given has no value";
  EXPECT_FALSE(none->Duration("job-deadline").value().has_value());
  for (const char* bad : {"-1", "65", "three", "2.5", ""}) {
    absl::StatusOr<std::optional<int64_t>> workers = Parse({"--workers", bad})->Integer("workers", 0, 64);
    EXPECT_THAT(workers, StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
    EXPECT_THAT(std::string(workers.status().message()), HasSubstr("--workers")) << bad;
  }
  for (const char* bad : {"soon", "-5s", "inf", "10"}) {
    EXPECT_THAT(Parse({"--job-deadline", bad})->Duration("job-deadline"), StatusIs(absl::StatusCode::kInvalidArgument))
        << bad;
  }
}

TEST(CommandLine, AFlagFileStandsForItsOptions) {
  const std::string path = TestTempDir() + "/server.flags";
  std::ofstream(path) << "# the server's flags\n--workers=2\n\n--input T1=a.nii\n  --maps  \n--out x\n";
  absl::StatusOr<CommandLine> line = Parse({"--input", "T0=z.nii", "--flagfile", path, "--input=T2=b.nii"});
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(line->Integer("workers").value(), 2);
  EXPECT_THAT(line->Values("input"), ElementsAre("T0=z.nii", "T1=a.nii", "T2=b.nii"));
  EXPECT_TRUE(line->Flag("maps"));
  EXPECT_EQ(line->Single("out").value(), "x");
}

TEST(CommandLine, ABadFlagFileIsAClearError) {
  EXPECT_THAT(Parse({"--flagfile", TestTempDir() + "/missing.flags"}), StatusIs(absl::StatusCode::kNotFound));
  const std::string unknown = TestTempDir() + "/unknown.flags";
  std::ofstream(unknown) << "--workers=2\n--spool_dir=/tmp\n";
  absl::StatusOr<CommandLine> line = Parse({"--flagfile=" + unknown});
  EXPECT_THAT(line, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(line.status().message()), HasSubstr("unknown.flags: unknown option --spool_dir"));
  const std::string nested = TestTempDir() + "/nested.flags";
  std::ofstream(nested) << "--flagfile=" << unknown << "\n";
  EXPECT_THAT(std::string(Parse({"--flagfile", nested}).status().message()), HasSubstr("may not name another"));
  const std::string word = TestTempDir() + "/word.flags";
  std::ofstream(word) << "submit\n";
  EXPECT_THAT(Parse({"--flagfile", word}), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(CommandLine, HelpListsEveryOptionWithItsValue) {
  const std::string help = OptionsHelp(kOptions);
  for (const Option& option : kOptions) {
    EXPECT_THAT(help, HasSubstr("--" + option.name)) << help;
    EXPECT_THAT(help, HasSubstr(option.help)) << help;
  }
  EXPECT_THAT(help, HasSubstr("--input NAME=FILE"));
  EXPECT_THAT(help, HasSubstr("  --maps  ")) << "a switch has no value placeholder";
  EXPECT_TRUE(AsksForHelp({"analyze", "--help"}));
  EXPECT_TRUE(AsksForHelp({"-h"}));
  EXPECT_FALSE(AsksForHelp({"--helpful"}));
}

TEST(SplitAssignment, NeedsBothSides) {
  EXPECT_EQ(SplitAssignment("input", "T1=a.nii").value(), std::make_pair(std::string("T1"), std::string("a.nii")));
  for (const char* bad : {"T1", "=a.nii", "T1=", ""}) {
    EXPECT_THAT(SplitAssignment("input", bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
}

}  // namespace
}  // namespace segrel::cli
