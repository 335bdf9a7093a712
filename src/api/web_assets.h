// The console's files (web/), embedded at build time by web/build.mjs: served by console.cc.
#pragma once

#include <span>
#include <string_view>

namespace hutch::api {

struct WebAsset {
  std::string_view path;          // "/" or "/assets/app.js": where it is served
  std::string_view content_type;  // "text/javascript; charset=utf-8"
  std::string_view body;
  std::string_view gzip_body;  // the same bytes gzipped, for Accept-Encoding: gzip
};

// Every file of the console, in the generated web_assets.cc.
std::span<const WebAsset> WebAssets();

}  // namespace hutch::api
