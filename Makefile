# The two commands of the README, and nothing clever.
SHELL := bash
.PHONY: demo test deps

# Start the whole CDN on this machine with sample content (made with ffmpeg on first run).
demo:
	.ci/install-deps demo
	cargo run --release --locked -- demo

# Check formatting, then run every test: unit tests and the end-to-end tests that start real
# processes on loopback. The last line sums up every test binary's result.
test:
	.ci/install-deps test
	@if cargo fmt --version >/dev/null 2>&1; then cargo fmt --all --check; \
	else echo "rustfmt is not installed: formatting not checked"; fi
	set -o pipefail; log=$$(mktemp); \
	cargo test --workspace --locked 2>&1 | tee "$$log"; status=$$?; \
	awk '/^test result:/ { p += $$4; f += $$6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$$log"; \
	rm -f "$$log"; exit $$status

deps:
	.ci/install-deps test
