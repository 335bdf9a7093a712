// Uploading a directory as a tar stream (`hutch cp DIR ID:PATH`, `hutch image import NAME DIR`):
// the producer an HTTP transfer reads the stream from.
#pragma once

#include <cstddef>
#include <functional>

#include "cli/http_client.h"
#include "files/archive.h"

namespace hutch::cli {

// Hands out `tar`'s stream in pieces of up to 1 MiB read ahead, calling on_sent(n) for each n
// bytes handed out (progress). `tar` must outlive the producer.
client::HttpClient::Producer TarProducer(files::TreeTar& tar,
                                         std::function<void(size_t n)> on_sent);

}  // namespace hutch::cli
