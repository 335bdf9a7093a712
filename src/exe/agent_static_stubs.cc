// The static hutch-agent links OpenSSL (agents reached over TCP terminate TLS themselves), whose
// libcrypto.a refers to glibc's dlopen (loading engines and providers from files),
// getaddrinfo and gethostbyname (BIO's name lookups). In a static binary these would load the
// *host's* shared NSS and libdl at run time inside the sandbox, where another glibc may be or
// none (and the linker warns about exactly that). The agent uses none of them: its TLS context
// uses OpenSSL's built-in default provider and it never resolves a name. The link wraps the
// three (-Wl,--wrap=…) so every call lands here and fails as the call itself can fail.
#include <dlfcn.h>
#include <netdb.h>

extern "C" {

void* __wrap_dlopen(const char*, int) { return nullptr; }

int __wrap_getaddrinfo(const char*, const char*, const struct addrinfo*, struct addrinfo** res) {
  if (res) *res = nullptr;
  return EAI_FAIL;
}

struct hostent* __wrap_gethostbyname(const char*) {
  h_errno = NO_RECOVERY;
  return nullptr;
}

}  // extern "C"
