# The two commands of README.md. Both install what is missing (scripts/setup.sh) first.
#   make run   — build (release) and run `concur bench`
#   make test  — build and run the whole test suite: release, then ThreadSanitizer + UBSan (the
#                libraries and their tests; the CLI, its app tests and the examples run in release
#                only)
# Other targets: `make asan` (Debug + ASan + UBSan suite), `make bench` (micro-benchmarks).
JOBS ?= 2

.PHONY: run test setup release tsan asan bench clean

setup:
	./scripts/setup.sh

release: setup
	cmake --preset release -DCONCUR_BUILD_BENCH=ON
	cmake --build --preset release -j $(JOBS)

# run builds only the `concur` binary (tests and examples are built by `make test`, benchmarks by
# `make release`).
run: setup
	cmake --preset release
	cmake --build --preset release -j $(JOBS) --target concur_cli
	./build/release/apps/concur/concur bench

# test leaves the micro-benchmarks out of the release build (they are not tests, and CI's time is
# bounded); `make release` or `make bench` builds them in the same build directory.
test: setup
	cmake --preset release -DCONCUR_BUILD_BENCH=OFF
	cmake --build --preset release -j $(JOBS)
	ctest --preset release
	cmake --preset tsan
	cmake --build --preset tsan -j $(JOBS)
	ctest --preset tsan

asan: setup
	cmake --preset dev
	cmake --build --preset dev -j $(JOBS)
	ctest --preset dev

bench: release
	./build/release/bench/sync_bench --benchmark_min_time=0.2

clean:
	rm -rf build
