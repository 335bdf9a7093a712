# Thin wrapper over CMake presets. `make run` and `make test` are the README's two commands.
PRESET ?= release
BUILD := build/$(PRESET)
DATA_DIR ?= /var/lib/hutch
LISTEN ?= 127.0.0.1:7070

.PHONY: setup build run test bench fmt clean

setup:
	@./scripts/setup

build: setup
	@cmake --preset $(PRESET) >/dev/null
	@cmake --build --preset $(PRESET)

run: build
	$(BUILD)/src/exe/hutch serve --listen $(LISTEN) --data-dir $(DATA_DIR)

test: build
	@ctest --preset $(PRESET)

bench: build
	@$(BUILD)/bench/hutch_bench --hutch $(BUILD)/src/exe/hutch

fmt:
	@git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf build
