// The web console: its files (web/, embedded by web/build.mjs) at / and /assets/…, and the
// routes that trade a token for the console's cookie (auth.h says how that cookie is checked):
//   POST /v1/console/signin  {token}  → the cookie, and the CSRF value to send with changes
//   POST /v1/console/signout          → the cookie's token revoked, the cookie cleared
//   GET  /v1/console/session          → who is signed in, and the CSRF value again (after a reload)
// Every file is served with a strict Content-Security-Policy: scripts from this origin only.
#pragma once

#include "api/auth.h"
#include "api/router.h"
#include "store/store.h"

namespace hutch::api {

struct ConsoleDeps {
  store::Store& store;
  Authenticator& auth;
  // The server speaks TLS: the cookie is Secure.
  bool tls = false;
};

void AddConsoleRoutes(Router& router, ConsoleDeps deps);

// The Content-Security-Policy of the console's pages.
extern const std::string_view kConsoleCsp;

}  // namespace hutch::api
