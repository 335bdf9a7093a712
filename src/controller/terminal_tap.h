// What a terminal relay tells whoever records it (an attached shell's recording,
// controller/attach_recording.h): the bytes both ways and the size, on the relay's strand.
#pragma once

#include <cstdint>
#include <string_view>

namespace hutch::controller {

class TerminalTap {
 public:
  virtual ~TerminalTap() = default;
  virtual void Output(std::string_view data) = 0;
  virtual void Input(std::string_view data) = 0;
  virtual void Resize(uint16_t rows, uint16_t cols) = 0;
};

}  // namespace hutch::controller
