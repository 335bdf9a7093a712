#include "sandbox/caps.h"

#include <gtest/gtest.h>

namespace hutch::sandbox {
namespace {

bool Kept(int cap) { return (SandboxCapabilityMask() >> cap) & 1; }

TEST(CapsTest, TheSetIsDockersWithoutRawSocketsDeviceNodesAuditAndFileCaps) {
  for (int cap : {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID, CAP_KILL, CAP_SETGID,
                  CAP_SETUID, CAP_SETPCAP, CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT}) {
    EXPECT_TRUE(Kept(cap)) << CapabilityName(cap);
  }
  for (int cap : {CAP_NET_RAW, CAP_MKNOD, CAP_AUDIT_WRITE, CAP_SETFCAP, CAP_SYS_ADMIN,
                  CAP_SYS_PTRACE, CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_RESOURCE, CAP_SYS_TIME,
                  CAP_SYS_BOOT, CAP_NET_ADMIN, CAP_DAC_READ_SEARCH, CAP_SYSLOG, CAP_BPF,
                  CAP_PERFMON, CAP_MAC_ADMIN, CAP_CHECKPOINT_RESTORE}) {
    EXPECT_FALSE(Kept(cap)) << CapabilityName(cap);
  }
  EXPECT_EQ(SandboxCapabilityMask(), 0x405fbu);  // as /proc/<pid>/status shows it
}

TEST(CapsTest, NamesAreTheKernels) {
  EXPECT_STREQ(CapabilityName(CAP_SYS_ADMIN), "cap_sys_admin");
  EXPECT_STREQ(CapabilityName(CAP_CHECKPOINT_RESTORE), "cap_checkpoint_restore");
  EXPECT_EQ(CapabilityName(-1), nullptr);
  EXPECT_EQ(CapabilityName(CAP_LAST_CAP + 1), nullptr);
}

}  // namespace
}  // namespace hutch::sandbox
