#include "core/activity.h"

#include <gtest/gtest.h>

namespace hutch::core {
namespace {

using Types = std::vector<std::string>;

TEST(ClassifyCommandLineTest, GitAndKubectlSubcommandsAreNamedAfterTheirVerb) {
  EXPECT_EQ(ClassifyCommandLine("git commit -m 'fix it'"), Types{"git.commit"});
  EXPECT_EQ(ClassifyCommandLine("git push origin main"), Types{"git.push"});
  EXPECT_EQ(ClassifyCommandLine("kubectl apply -f deploy.yaml"), Types{"kubectl.apply"});
  EXPECT_EQ(ClassifyCommandLine("git init"), Types{"git.init"});
}

TEST(ClassifyCommandLineTest, EverySimpleCommandOfALineIsClassifiedInOrder) {
  EXPECT_EQ(ClassifyCommandLine("git add . && git commit -m x; git push | cat"),
            (Types{"git.add", "git.commit", "git.push"}));
  EXPECT_EQ(ClassifyCommandLine("(cd repo && git status)"), Types{"git.status"});
}

TEST(ClassifyCommandLineTest, WrappersPathsAndGlobalOptionsAreLookedThrough) {
  EXPECT_EQ(ClassifyCommandLine("GIT_AUTHOR_NAME=x sudo -E /usr/bin/git -C repo commit"),
            Types{"git.commit"});
  EXPECT_EQ(ClassifyCommandLine("git -c user.name=a --no-pager log"), Types{"git.log"});
  EXPECT_EQ(ClassifyCommandLine("kubectl -n prod --context kind get pods"), Types{"kubectl.get"});
  EXPECT_EQ(ClassifyCommandLine("env KUBECONFIG=/k kubectl delete pod x"), Types{"kubectl.delete"});
}

TEST(ClassifyCommandLineTest, QuotedSeparatorsAndArgumentsDoNotStartCommands) {
  EXPECT_EQ(ClassifyCommandLine("echo 'git push; kubectl apply'"), Types{});
  EXPECT_EQ(ClassifyCommandLine("git commit -m \"a; git push\""), Types{"git.commit"});
  EXPECT_EQ(ClassifyCommandLine("mygit push"), Types{});
  EXPECT_EQ(ClassifyCommandLine("echo git push"), Types{});
}

TEST(ClassifyCommandLineTest, UnknownSubcommandsAreOtherAndBareProgramsNothing) {
  EXPECT_EQ(ClassifyCommandLine("git frobnicate"), Types{"git.other"});
  EXPECT_EQ(ClassifyCommandLine("kubectl krew install x"), Types{"kubectl.other"});
  EXPECT_EQ(ClassifyCommandLine("git --version"), Types{});
  EXPECT_EQ(ClassifyCommandLine(""), Types{});
}

TEST(ActivityTypeTest, KnownFamiliesWithPlainNamesAreTypes) {
  EXPECT_TRUE(IsActivityType("shell.command"));
  EXPECT_TRUE(IsActivityType("milestone.deployed"));
  EXPECT_TRUE(IsActivityType("exec"));
  EXPECT_TRUE(IsActivityType("git.cherry-pick"));
  EXPECT_FALSE(IsActivityType("milestone."));
  EXPECT_FALSE(IsActivityType("milestone.Deployed"));
  EXPECT_FALSE(IsActivityType("bogus.thing"));
  EXPECT_FALSE(IsActivityType("milestone." + std::string(60, 'a')));
}

TEST(ActivityTypeTest, PatternsMatchAFamilyOrOneType) {
  EXPECT_TRUE(IsActivityTypePattern("shell"));
  EXPECT_TRUE(IsActivityTypePattern("shell.*"));
  EXPECT_TRUE(IsActivityTypePattern("git.commit"));
  EXPECT_FALSE(IsActivityTypePattern("nope.*"));
  EXPECT_TRUE(ActivityTypeMatches("shell.*", "shell.command"));
  EXPECT_TRUE(ActivityTypeMatches("git", "git.push"));
  EXPECT_TRUE(ActivityTypeMatches("git.push", "git.push"));
  EXPECT_FALSE(ActivityTypeMatches("git", "gitx.push"));
  EXPECT_FALSE(ActivityTypeMatches("git.push", "git.pull"));
  EXPECT_TRUE(ActivityTypeMatches("exec", "exec"));
}

TEST(JoinArgvTest, QuotesOnlyWordsThatNeedIt) {
  EXPECT_EQ(JoinArgv({"git", "commit", "-m", "it's done"}), "git commit -m 'it'\\''s done'");
  EXPECT_EQ(JoinArgv({"ls", "-la", "/tmp"}), "ls -la /tmp");
  EXPECT_EQ(JoinArgv({"echo", ""}), "echo ''");
}

TEST(ActivityCsvTest, FieldsWithCommasQuotesAndNewlinesAreQuoted) {
  ActivityRecord r;
  r.id = 7;
  r.at = FromUnixMillis(0);
  r.type = "shell.command";
  r.session_id = "ses_a";
  r.owner = "usr_a";
  r.actor = "session";
  r.command = "echo \"a,b\"\nls";
  r.exit_code = 0;
  EXPECT_EQ(
      ActivityCsvRow(r),
      "7,1970-01-01T00:00:00.000Z,shell.command,ses_a,usr_a,,,session,\"echo \"\"a,b\"\"\nls\","
      "0,{}\r\n");
  EXPECT_TRUE(ActivityCsvHeader().starts_with("id,at,type,"));
}

}  // namespace
}  // namespace hutch::core
